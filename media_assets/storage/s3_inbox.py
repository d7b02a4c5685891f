"""The inbox on S3: objects dropped under a prefix, listed a bounded window at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from media_assets.core.store import InboxEntry, is_ignored_name
from media_assets.operations.housekeeping import STAGING
from media_assets.storage.s3 import (
    PRECONDITION_FAILED,
    check_key,
    classify_s3_errors,
    download_to_temp,
    error_code,
    scratch_default,
)


class S3Inbox:
    """Objects dropped under `prefix` in `bucket`. An object is visible only once complete
    (no half-written files), so settling matters less than locally.

    The inbox drains: a batch's objects are deleted once stored. The sensor scans it in
    name order with a page budget per tick (`scan`), resuming after the last name it saw
    and wrapping around at the end, so every object is reached within a bounded number of
    ticks however many objects open batches still hold; no LastModified high-water mark
    (a multipart upload carries its start time, and objects sharing a timestamp would be
    lost at the mark)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, page_size: int = 1000,
                 pages_per_scan: int = 10, scratch_root: str | Path | None = None) -> None:
        self.client, self.bucket = client, bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.page_size, self.pages_per_scan = page_size, pages_per_scan
        self.root = Path(scratch_root or scratch_default())
        self.resume_after = ""  # where the next scan starts ("" = from the beginning)

    def _key(self, name: str) -> str:
        return self.prefix + check_key(name)

    def describe(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def is_ignored(self, name: str) -> bool:
        return is_ignored_name(name)

    def _pages(self, after: str = "") -> Iterator[tuple[list[InboxEntry], str]]:
        """(entries, last name listed, or "" on the last page) per page, after `after`."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix,
                                "PaginationConfig": {"PageSize": self.page_size}}
        if after:
            args["StartAfter"] = self.prefix + after
        pages = self.client.get_paginator("list_objects_v2").paginate(**args)
        with classify_s3_errors(f"s3://{self.bucket}/{self.prefix}"):
            for page in pages:
                items = page.get("Contents", [])
                if items:
                    yield ([entry for item in items if (entry := self._entry(item)) is not None],
                           items[-1]["Key"][len(self.prefix):] if page.get("IsTruncated")
                           else "")

    def _entry(self, item: dict[str, Any]) -> InboxEntry | None:
        name = item["Key"][len(self.prefix):]
        if not name or name.endswith("/") or self.is_ignored(name):
            return None
        # Whole seconds: HEAD answers in HTTP-date precision, and remove_if_unchanged
        # compares with it.
        return InboxEntry(name=name, size=int(item["Size"]),
                          mtime=float(int(item["LastModified"].timestamp())), complete=True)

    def list_entries(self, report: Callable[[str, str], None] | None = None
                     ) -> Iterator[InboxEntry]:
        """Every object, in name order (a full listing: for counts, not for the sensor). An
        object store has no links or special files: `report` never hears of one."""
        for entries, _ in self._pages():
            yield from entries

    def scan(self, after: str = "", report: Callable[[str, str], None] | None = None
             ) -> Iterator[InboxEntry]:
        """At most `pages_per_scan` pages, in name order, after the name `after`. Sets
        `resume_after`: the last name listed, or "" when the listing reached the end."""
        self.resume_after = ""
        for number, (entries, last) in enumerate(self._pages(after), start=1):
            yield from entries
            if number >= self.pages_per_scan:
                self.resume_after = last
                return

    def read_header(self, name: str, size: int) -> bytes:
        """The first `size` bytes, by a ranged GET (an empty object has none)."""
        return self.read_range(name, 0, size)

    def read_range(self, name: str, offset: int, size: int) -> bytes:
        """`size` bytes from `offset` by a ranged GET (fewer at the end, none past it)."""
        if offset < 0 or size < 0:
            raise ValueError("offset and size must not be negative")
        if size == 0:
            return b""
        try:
            with classify_s3_errors(self.describe(name)):
                body = self.client.get_object(Bucket=self.bucket, Key=self._key(name),
                                              Range=f"bytes={offset}-{offset + size - 1}")["Body"]
                with contextlib.closing(body):
                    return body.read(size)
        except ClientError as exc:
            if error_code(exc) in ("InvalidRange", "416"):
                return b""
            raise

    @contextlib.contextmanager
    def local_path(self, name: str) -> Iterator[Path]:
        """The object streamed to a local temp file (removed when the block ends)."""
        folder = self.root / STAGING
        folder.mkdir(parents=True, exist_ok=True)
        with classify_s3_errors(self.describe(name)):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        suffix = PurePosixPath(name).suffix
        with download_to_temp(body, self.describe(name), folder, suffix) as path:
            yield path

    def _head(self, name: str) -> dict[str, Any] | None:
        try:
            with classify_s3_errors(self.describe(name)):
                return self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except FileNotFoundError:
            return None

    def remove_if_unchanged(self, name: str, size: int, mtime: float) -> bool:
        """Delete the object only if it is still the one listed: same size and LastModified
        (seconds) now, and the same ETag at deletion (a conditional DELETE, If-Match)."""
        head = self._head(name)
        if head is None:
            return True
        if int(head["ContentLength"]) != size or int(head["LastModified"].timestamp()) != int(
                mtime):
            return False
        try:
            with classify_s3_errors(self.describe(name)):
                self.client.delete_object(Bucket=self.bucket, Key=self._key(name),
                                          IfMatch=head["ETag"])
        except FileNotFoundError:
            return True
        except ClientError as exc:
            if error_code(exc) in PRECONDITION_FAILED:
                return False  # replaced since the HEAD: the new object stays
            raise
        return True

    def still_as_listed(self, name: str, size: int, mtime: float) -> bool:
        """An object is whole once listed; one replaced since is another whole file, which
        `remove_if_unchanged` leaves for the next batch. No request needed."""
        return True

    def exists(self, name: str) -> bool:
        return self._head(name) is not None
