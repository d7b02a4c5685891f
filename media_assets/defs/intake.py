"""`originals`: each file read once, hashed while it streams into the content-addressed store,
validated from its magic bytes and header, deduplicated, or quarantined with its reason."""


import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from media_assets.defs.common import STORAGE_RETRY, require_manifest, table
from media_assets.defs.partitions import batch_partitions, one_run_per_batch
from media_assets.defs.resources import (
    DecodeWorkers,
    InboxResource,
    MediaStorage,
    PolicyResource,
)
from media_assets.media.errors import Rejected
from media_assets.media.intake import StagedFile, hash_file, stage_file
from media_assets.media.layout import first_arrival_key, original_key
from media_assets.media.manifest import close_batch, quarantine, save_manifest
from media_assets.media.pool import Outcome
from media_assets.media.sniff import sniff
from media_assets.storage.base import with_transient_retries

INTAKE_VERSION = "originals-1"


@asset(
    partitions_def=batch_partitions,
    backfill_policy=one_run_per_batch,
    code_version=INTAKE_VERSION,
    retry_policy=STORAGE_RETRY,
    group_name="ingest",
    kinds={"python", "file"},
)
def originals(
    context: AssetExecutionContext,
    storage: MediaStorage,
    inbox: InboxResource,
    policy: PolicyResource,
    workers: DecodeWorkers,
) -> MaterializeResult:
    """Validated originals of one batch in the content-addressed store (key = SHA-256)."""
    store, drop, rules = storage.store(), inbox.inbox(), policy.load()
    batch_key = context.partition_key
    manifest = require_manifest(store, batch_key)
    previous = {f["source_name"]: f for f in manifest.get("files") or []}
    staging = store.staging_dir()

    tasks: list[tuple[str, Any, tuple[Any, ...]]] = []
    inbox_paths: dict[str, Path] = {}
    files: list[dict[str, Any]] = []
    for source in manifest["sources"]:
        if "inbox" in source and source["inbox"] in previous:
            files.append(previous[source["inbox"]])  # ingested by an earlier run of this batch
            drop.remove(source["inbox"])  # in case that run stopped before removing it
        elif "inbox" in source and drop.exists(source["inbox"]):
            with drop.local_path(source["inbox"]) as path:
                inbox_paths[source["inbox"]] = path
                tasks.append((source["inbox"], stage_file, (str(path), str(staging), rules.limits)))
        elif "content_id" in source:
            files.append(_from_store(store, source))
        else:
            files.append(_missing(source))

    started = time.perf_counter()
    run_id = context.run.run_id
    sources = {s.get("inbox"): s for s in manifest["sources"]}

    def settle(name: str, outcome: Outcome) -> None:
        """Store (or quarantine) each file as soon as its worker has staged it."""
        files.append(_settle(store, name, inbox_paths[name], sources[name], outcome.value,
                             outcome.error, batch_key, run_id))

    outcomes = workers.run(tasks, rules.limits, on_outcome=settle)
    elapsed = time.perf_counter() - started

    manifest["files"] = sorted(files, key=lambda f: f["source_name"])
    manifest["intake_run_id"] = run_id
    manifest["policy_version"] = rules.stamp
    save_manifest(store, manifest)
    # Files leave the inbox only now: their bytes are stored and verified (or quarantined)
    # and the manifest that links each name to its content id is durable.
    for name in outcomes:
        drop.remove(name)
    close_batch(store, batch_key)
    return MaterializeResult(metadata=_summary(manifest["files"], elapsed))


def _settle(store: Any, name: str, inbox_path: Path, source: dict[str, Any],
            staged: StagedFile | None, error: Exception | None, batch_key: str,
            run_id: str) -> dict[str, Any]:
    """Move one staged file into the store (or quarantine) and describe the outcome."""
    arrived = datetime.fromtimestamp(source.get("mtime", time.time()), UTC).isoformat()
    base = {"source_name": name, "arrived_at": arrived,
            "intake_ms": staged.elapsed_ms if staged else None}
    if staged is None:  # the worker itself failed: keep the inbox bytes in quarantine
        reason = error.reason if isinstance(error, Rejected) else "intake_error"
        return _quarantined(store, base, hash_file(inbox_path), reason, str(error), error,
                            batch_key, run_id, bytes_path=inbox_path)
    staged_path = Path(staged.staged_path)
    base.update(content_id=staged.content_id, bytes=staged.size, kind=staged.kind,
                type=staged.type, width=staged.width, height=staged.height)
    try:
        if staged.rejection:
            reason, detail = staged.rejection
            return _quarantined(store, base, staged.content_id, reason, detail, None,
                                batch_key, run_id, bytes_path=staged_path)
        key = original_key(staged.content_id, staged.extension)
        with_transient_retries(store.put_file_if_absent)(key, staged_path)
        with store.local_path(key) as stored:
            corrupt = hash_file(stored) != staged.content_id
        if corrupt:  # whoever wrote it, an object that does not hash to its key is garbage
            store.delete(key)
            return _quarantined(store, base, staged.content_id, "fixity_mismatch",
                                "stored bytes differ from the source", None, batch_key,
                                run_id, bytes_path=staged_path)
        first = _first_arrival(store, staged, batch_key)
        return {**base, "status": "ok", "duplicate": not first, "original_key": key,
                "reason": None, "detail": None}
    finally:
        staged_path.unlink(missing_ok=True)


def _first_arrival(store: Any, staged: StagedFile, batch_key: str) -> bool:
    """True when this batch is the first to bring this content (put-if-absent decides)."""
    key = first_arrival_key(staged.content_id)
    store.put_bytes_if_absent(key, batch_key.encode())
    return store.read_bytes(key).decode() == batch_key


def _quarantined(store: Any, base: dict[str, Any], content_id: str, reason: str, detail: str,
                 error: Exception | None, batch_key: str, run_id: str,
                 bytes_path: Path | None) -> dict[str, Any]:
    key = quarantine(
        store, bytes_path=bytes_path, content_id=content_id, batch_key=batch_key,
        source_name=base["source_name"], reason=reason, detail=detail,
        error_class=type(error).__name__ if error else "Rejected", stage="originals",
        run_id=run_id,
    )
    return {"kind": None, "type": None, "bytes": None, "width": None, "height": None, **base,
            "content_id": content_id, "status": "quarantined", "duplicate": False,
            "original_key": None, "quarantine_key": key, "reason": reason, "detail": detail}


def _from_store(store: Any, source: dict[str, Any]) -> dict[str, Any]:
    """A content id source (replay, rebuild): the bytes are already in the store."""
    cid = source["content_id"]
    matches = [k for k in store.list(f"originals/{cid[:2]}/{cid[2:4]}/") if cid in k]
    base = {"source_name": source.get("source_name", cid), "content_id": cid,
            "arrived_at": None, "intake_ms": None, "duplicate": True}
    if not matches:
        return {**base, "status": "missing", "reason": "not_in_store", "kind": None}
    with store.open_read(matches[0]) as handle:
        sniffed = sniff(handle.read(65536))
    return {**base, "status": "ok", "original_key": matches[0], "kind": sniffed.kind,
            "type": sniffed.type, "bytes": store.size(matches[0]), "reason": None}


def _missing(source: dict[str, Any]) -> dict[str, Any]:
    return {"source_name": source.get("inbox", "?"), "content_id": None, "status": "missing",
            "reason": "gone_from_inbox", "kind": None, "duplicate": False}


def _summary(files: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    stored = [f for f in files if f["status"] == "ok"]
    quarantined = [f for f in files if f["status"] == "quarantined"]
    return {
        "files": len(files),
        "stored": sum(not f.get("duplicate") for f in stored),
        "duplicates": sum(bool(f.get("duplicate")) for f in stored),
        "quarantined": len(quarantined),
        "bytes": sum(f.get("bytes") or 0 for f in files),
        "files_per_second": round(len(files) / elapsed, 2) if elapsed > 0 else None,
        "quarantine_reasons": MetadataValue.json(
            {f["source_name"]: f["reason"] for f in quarantined}),
        "file_table": table(files, [
            ("source_name", "string"), ("content_id", "string"), ("status", "string"),
            ("reason", "string"), ("type", "string"), ("width", "int"), ("height", "int"),
            ("bytes", "int"),
        ]),
    }
