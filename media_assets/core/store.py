"""The storage contract. Keys are '/'-separated strings; every write is atomic.

Shaped like an object store (keys, streaming reads and writes, put-if-absent, list by prefix)
so that local folders and S3 implement the same interface.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from media_assets.core.errors import TransientError

T = TypeVar("T")


def with_transient_retries(fn: Callable[..., T]) -> Callable[..., T]:
    """Retry an operation that raised TransientError, bounded, with jittered backoff."""
    return retry(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(4),
        wait=wait_random_exponential(multiplier=0.2, max=3),
        reraise=True,
    )(fn)


class ObjectStore(Protocol):
    """Content store, derivatives, quarantine and catalog all live behind this."""

    # True when put_file(_if_absent) of a file from staging_dir() links that very file into
    # place (a local filesystem): what was hashed while it was written is what is stored, so
    # a new object needs no re-read. False when the bytes travel (an upload).
    @property
    def links_staged_files(self) -> bool: ...

    def put_file(self, key: str, source: Path) -> None: ...
    def put_file_if_absent(self, key: str, source: Path) -> bool: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def put_bytes_if_absent(self, key: str, data: bytes) -> bool: ...
    def open_read(self, key: str) -> BinaryIO: ...
    def read_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int: ...
    def list(self, prefix: str) -> Iterator[str]: ...
    def delete(self, key: str) -> None: ...
    def local_path(self, key: str) -> contextlib.AbstractContextManager[Path]: ...
    def staging_dir(self) -> Path: ...
    def describe(self, key: str) -> str: ...
    # Tiers ("hot", "cold"): keys never change with the tier. Locally a cold folder; on S3
    # the object's storage class (e.g. GLACIER_IR), so reads keep working by key.
    def tier(self, key: str) -> str | None: ...
    def set_tier(self, key: str, tier: str) -> None: ...
    def free_bytes(self) -> int | None: ...  # None: cannot run out (an object store)


@dataclass(frozen=True)
class InboxEntry:
    """One file waiting in the inbox, as a listing sees it (no content read)."""

    name: str  # path relative to the inbox root, '/'-separated
    size: int
    mtime: float
    # The writer is known to be done, so no settle time applies: an object store's object is
    # visible only once its upload completed. (A local file cannot say so reliably: a rename
    # right after the last write leaves ctime == mtime at the clock's granularity.)
    complete: bool = False


IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", "~", ".swp")


def is_ignored_name(name: str) -> bool:
    """Dotfiles (at any level) and partial-download names are never taken from an inbox."""
    parts = name.split("/")
    return any(p.startswith(".") for p in parts) or name.lower().endswith(IGNORED_SUFFIXES)


class Inbox(Protocol):
    """Where files land. Listing and header reads must stay cheap: the sensor uses them.

    `list_entries` is the whole listing (for counts); `scan(after)` is what one sensor tick
    looks at: a bounded window of the listing after the name `after`, setting
    `resume_after` to where the next window starts ("" = from the beginning)."""

    resume_after: str
    root: Path  # the local folder `local_path` gives files under (S3: its scratch folder)

    def list_entries(self, report: Callable[[str, str], None] | None = None
                     ) -> Iterator[InboxEntry]: ...
    def scan(self, after: str = "", report: Callable[[str, str], None] | None = None
             ) -> Iterator[InboxEntry]: ...
    def is_ignored(self, name: str) -> bool: ...
    def read_header(self, name: str, size: int) -> bytes: ...
    # At most `size` bytes from `offset` (fewer at the end of the file, b"" past it): the
    # sensor's cheap probe reads an MP4's index (`moov`) this way when it follows the media.
    def read_range(self, name: str, offset: int, size: int) -> bytes: ...
    def local_path(self, name: str) -> contextlib.AbstractContextManager[Path]: ...
    def remove_if_unchanged(self, name: str, size: int, mtime: float) -> bool: ...
    # Still the file the sensor listed (same size and mtime)? False: someone wrote to it since
    # (a writer was not done). An object store's objects are whole once listed: always True.
    def still_as_listed(self, name: str, size: int, mtime: float) -> bool: ...
    def exists(self, name: str) -> bool: ...
