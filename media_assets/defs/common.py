"""Helpers shared by the batch assets: the batch's files, tables and retry policy."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import (
    Backoff,
    Failure,
    Jitter,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableRecord,
    TableSchema,
)

from media_assets.media.errors import Rejected
from media_assets.media.manifest import load_manifest, quarantine

# Transient storage trouble that outlives the in-step retries fails the step; Dagster then
# retries the whole step a bounded number of times. Bad files never raise: they quarantine.
STORAGE_RETRY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL,
                            jitter=Jitter.PLUS_MINUS)


def require_manifest(store: Any, batch_key: str) -> dict[str, Any]:
    manifest = load_manifest(store, batch_key)
    if manifest is None:
        raise Failure(f"batch {batch_key!r} has no manifest in the store", allow_retries=False)
    return manifest


def require_intake(store: Any, batch_key: str) -> dict[str, Any]:
    manifest = require_manifest(store, batch_key)
    if manifest.get("files") is None:
        raise Failure(f"batch {batch_key!r} has not been ingested: materialise `originals` "
                      "for it first", allow_retries=False)
    return manifest


def stored_images(manifest: dict[str, Any], exclude: set[str] = frozenset()) -> dict[str, dict]:
    """Content id -> file entry for the batch's stored images (each content once)."""
    files: dict[str, dict] = {}
    for entry in manifest["files"]:
        cid = entry["content_id"]
        if entry["status"] == "ok" and entry["kind"] == "image" and cid not in exclude:
            files.setdefault(cid, entry)
    return files


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> MetadataValue:
    """A UI table; `columns` are (name, type) with types 'string', 'int', 'float', 'bool'."""
    schema = TableSchema(columns=[TableColumn(name, kind) for name, kind in columns])
    records = [TableRecord({name: row.get(name) for name, _ in columns}) for row in rows]
    return MetadataValue.table(records=records, schema=schema)


@contextlib.contextmanager
def local_originals(store: Any, entries: dict[str, dict[str, Any]]) -> Iterator[dict[str, Path]]:
    """Local paths of the originals of `entries` (a remote store downloads them first)."""
    with contextlib.ExitStack() as stack:
        yield {cid: stack.enter_context(store.local_path(entry["original_key"]))
               for cid, entry in entries.items()}


def quarantine_failure(store: Any, entry: dict[str, Any], error: Exception | None, *,
                       batch_key: str, stage: str, run_id: str) -> None:
    """Quarantine a stored original that a later step could not process."""
    reason = error.reason if isinstance(error, Rejected) else "error"
    with store.local_path(entry["original_key"]) as path:
        quarantine(store, bytes_path=path, content_id=entry["content_id"], batch_key=batch_key,
                   source_name=entry["source_name"], reason=reason, detail=str(error),
                   error_class=type(error).__name__, stage=stage, run_id=run_id)
