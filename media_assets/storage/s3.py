"""The object store on S3 (any S3-compatible server; no Dagster here). The inbox on S3 is in
`s3_inbox.py`.

Writes are single requests or multipart uploads, so an object appears whole or not at all.
Put-if-absent is a conditional write (`If-None-Match: *` on PutObject or on
CompleteMultipartUpload), atomic on the server. Reads stream: nothing holds a whole object
in memory except `read_bytes`, which is for small objects (manifests, records, fragments).
The tier of an object is its storage class (`cold` = a configurable class, GLACIER_IR by
default: an instant-retrieval class, so reads by key keep working).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from media_assets.core.errors import TransientError
from media_assets.operations.housekeeping import STAGING, TEMP_MARK

MiB = 1024 * 1024
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
PRECONDITION_FAILED = {"412", "PreconditionFailed"}
RETRYABLE = {"SlowDown", "RequestTimeout", "ConditionalRequestConflict", "409", "503", "500"}
HOT_CLASS = "STANDARD"
COPY_BUFFER = MiB


def scratch_default() -> Path:
    """Where downloads and staged files go unless a scratch folder is configured."""
    return Path(tempfile.gettempdir()) / "media_assets-s3"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def classify_s3_errors(what: str) -> Iterator[None]:
    """Missing objects -> FileNotFoundError; throttling, 5xx, lost connections ->
    TransientError (retried by the callers' bounded retries); the rest propagate."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in NOT_FOUND:
            raise FileNotFoundError(f"no object {what}") from exc
        if code in RETRYABLE or status >= 500:
            raise TransientError(f"{what}: {exc}") from exc
        raise
    except BotoCoreError as exc:  # connection refused/reset, read timeout, truncated body
        raise TransientError(f"{what}: {exc}") from exc


def check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid key {key!r}")
    return key


def _visible(name: str) -> bool:
    """Listings skip hidden names and temp files, like the local store does."""
    return not any(part.startswith(".") or TEMP_MARK in part for part in name.split("/"))


class S3ObjectStore:
    """Objects under `prefix` in `bucket`. `client` is a boto3 S3 client (from dagster-aws's
    `S3Resource.get_client()` in the code location). `scratch_root` is a local folder for
    staged files and downloads (`root`, like the local store's, for housekeeping)."""

    TIERS = ("hot", "cold")
    links_staged_files = False  # every put is an upload: a new object is read back

    def __init__(self, client: Any, bucket: str, prefix: str = "", *,
                 sse: str | None = None, cold_storage_class: str = "GLACIER_IR",
                 part_size: int = 16 * MiB, scratch_root: str | Path | None = None) -> None:
        self.client, self.bucket = client, bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.sse = sse or None
        self.cold_storage_class = cold_storage_class
        self.part_size = max(part_size, 5 * MiB)  # S3's smallest part
        self.transfer = TransferConfig(multipart_threshold=self.part_size,
                                       multipart_chunksize=self.part_size, max_concurrency=4)
        self.root = Path(scratch_root or scratch_default())

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _write_args(self) -> dict[str, str]:
        return {"ServerSideEncryption": self.sse} if self.sse else {}

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def free_bytes(self) -> int | None:
        return None  # an object store does not fill up

    def staging_dir(self) -> Path:
        path = self.root / STAGING
        path.mkdir(parents=True, exist_ok=True)
        return path

    # writes

    def put_file(self, key: str, source: Path) -> None:
        """Upload a file; multipart above `part_size` (the object appears when complete)."""
        Path(source).stat()  # FileNotFoundError before any request
        with classify_s3_errors(self.describe(key)):
            self.client.upload_file(str(source), self.bucket, self._key(key),
                                    ExtraArgs=self._write_args() or None, Config=self.transfer)

    def put_file_if_absent(self, key: str, source: Path) -> bool:
        """Store `source` unless the key exists; a conditional write decides races."""
        if self.exists(key):
            return False
        size = Path(source).stat().st_size
        if size <= self.part_size:
            with open(source, "rb") as body:
                return self._put_if_absent(key, body)
        return self._multipart_if_absent(key, Path(source))

    def put_bytes(self, key: str, data: bytes) -> None:
        with classify_s3_errors(self.describe(key)):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                   **self._write_args())

    def put_bytes_if_absent(self, key: str, data: bytes) -> bool:
        return self._put_if_absent(key, data)

    def _put_if_absent(self, key: str, body: Any) -> bool:
        try:
            with classify_s3_errors(self.describe(key)):
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body,
                                       IfNoneMatch="*", **self._write_args())
        except ClientError as exc:
            if error_code(exc) in PRECONDITION_FAILED:
                return False
            raise
        return True

    def _multipart_if_absent(self, key: str, source: Path) -> bool:
        """A multipart upload completed with If-None-Match: one part in memory at a time."""
        target = self._key(key)
        with classify_s3_errors(self.describe(key)):
            upload = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=target, **self._write_args())["UploadId"]
        try:
            parts = []
            with open(source, "rb") as handle, classify_s3_errors(self.describe(key)):
                while chunk := handle.read(self.part_size):
                    number = len(parts) + 1
                    etag = self.client.upload_part(Bucket=self.bucket, Key=target,
                                                   UploadId=upload, PartNumber=number,
                                                   Body=chunk)["ETag"]
                    parts.append({"PartNumber": number, "ETag": etag})
                    del chunk
            with classify_s3_errors(self.describe(key)):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=target, UploadId=upload,
                    MultipartUpload={"Parts": parts}, IfNoneMatch="*")
            return True
        except ClientError as exc:
            self._abort(target, upload)
            if error_code(exc) in PRECONDITION_FAILED:
                return False
            raise
        except BaseException:
            self._abort(target, upload)
            raise

    def _abort(self, target: str, upload: str) -> None:
        with contextlib.suppress(ClientError, BotoCoreError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload)

    def delete(self, key: str) -> None:
        with classify_s3_errors(self.describe(key)):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    # reads

    def _get(self, key: str, **kwargs: Any) -> Any:
        with classify_s3_errors(self.describe(key)):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)

    def open_read(self, key: str) -> BinaryIO:
        """A forward-only stream of the object's bytes (close it when done)."""
        return self._get(key)["Body"]

    def read_bytes(self, key: str) -> bytes:
        """The whole object in memory: for small objects only (use local_path for media)."""
        body = self._get(key)["Body"]
        with classify_s3_errors(self.describe(key)), contextlib.closing(body):
            return body.read()

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            with classify_s3_errors(self.describe(key)):
                return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"no object {self.describe(key)}")
        return int(head["ContentLength"])

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` (folder-like: "a" lists "a/…", never "ab"), sorted."""
        if ".." in prefix.split("/"):
            return
        folder = prefix.strip("/")
        full = self.prefix + (f"{folder}/" if folder else "")
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full)
        with classify_s3_errors(f"s3://{self.bucket}/{full}"):
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix):]
                    if name and not name.endswith("/") and _visible(name):
                        yield name

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """The object downloaded (streamed, 1 MiB at a time) to a temp file, removed after."""
        with download_to_temp(self._get(key)["Body"], self.describe(key), self.staging_dir(),
                              PurePosixPath(key).suffix) as path:
            yield path

    # tiers

    def tier(self, key: str) -> str | None:
        head = self._head(key)
        if head is None:
            return None
        return "cold" if head.get("StorageClass") == self.cold_storage_class else "hot"

    def set_tier(self, key: str, tier: str) -> None:
        """Change the storage class in place (a copy onto itself; the key never changes)."""
        if tier not in self.TIERS:
            raise ValueError(f"unknown tier {tier!r}; tiers are {self.TIERS}")
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(f"no object {self.describe(key)}")
        if ("cold" if head.get("StorageClass") == self.cold_storage_class else "hot") == tier:
            return
        target = self._key(key)
        extra = {"StorageClass": self.cold_storage_class if tier == "cold" else HOT_CLASS,
                 "MetadataDirective": "REPLACE", "Metadata": head.get("Metadata", {}),
                 **self._write_args()}
        if head.get("ContentType"):
            extra["ContentType"] = head["ContentType"]
        with classify_s3_errors(self.describe(key)):
            self.client.copy({"Bucket": self.bucket, "Key": target}, self.bucket, target,
                             ExtraArgs=extra, Config=self.transfer)


@contextlib.contextmanager
def download_to_temp(body: Any, what: str, folder: Path, suffix: str) -> Iterator[Path]:
    """Stream a GetObject body into a temp file in `folder` (1 MiB at a time); remove it after."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"download{TEMP_MARK}", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle, classify_s3_errors(what), contextlib.closing(body):
            shutil.copyfileobj(body, handle, COPY_BUFFER)
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
