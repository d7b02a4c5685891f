"""`originals`: each file read once, hashed while it streams into the content-addressed store,
validated from its magic bytes and header, deduplicated, or quarantined with its reason."""


import hashlib
import os
import shutil
import tempfile
import time
from contextlib import ExitStack, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from media_assets.codec.intake import StagedFile, hash_file, stage_file
from media_assets.codec.pool import Outcome, timed_call
from media_assets.codec.sniff import sniff
from media_assets.codec.untrusted import display_names, open_untrusted
from media_assets.core.errors import Rejected
from media_assets.core.store import with_transient_retries
from media_assets.defs.common import (
    STORAGE_RETRY,
    log_file,
    record_usage,
    require_manifest,
    table,
)
from media_assets.defs.partitions import OWNERS, batch_partitions, media_tags, one_run_per_batch
from media_assets.defs.resources import (
    DecodeWorkers,
    InboxResource,
    MediaStorage,
    PolicyResource,
)
from media_assets.operations.usage import meter_of
from media_assets.records.layout import first_arrival_key, metadata_key, original_key
from media_assets.records.manifest import close_batch, mark_unreadable, quarantine, save_manifest
from media_assets.records.retention import revive

INTAKE_VERSION = "originals-1"


@asset(
    partitions_def=batch_partitions,
    backfill_policy=one_run_per_batch,
    code_version=INTAKE_VERSION,
    retry_policy=STORAGE_RETRY,
    group_name="ingest",
    owners=OWNERS,
    tags=media_tags("all"),
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
    sources = {s["inbox"]: s for s in manifest["sources"] if "inbox" in s}
    # Inbox names are untrusted: what is recorded (manifest files, catalog, quarantine
    # records, audit, metadata) is each name sanitised, unique within the batch. The raw
    # name only finds the file in the inbox (the manifest's `sources`).
    shown = display_names(sources)

    tasks: list[tuple[str, Any, tuple[Any, ...]]] = []
    inbox_paths: dict[str, Path] = {}
    files: list[dict[str, Any]] = []
    leaving: list[str] = []  # names whose bytes are safe: they may leave the inbox
    staging = Path(tempfile.mkdtemp(dir=store.staging_dir(), prefix="intake-"))
    released: set[str] = set()  # quarantined files an operator released for another try
    # Local paths of the files to stage stay valid until every worker is done (on S3 they
    # are downloads, removed when this stack closes).
    local = ExitStack()
    for source in manifest["sources"]:
        name = source.get("inbox")
        if "quarantine_key" in source:
            name = source["source_name"]
        recorded = previous.get(shown.get(name, name)) if name is not None else None
        if recorded is not None and recorded["status"] in SAFE:
            files.append(recorded)  # ingested by an earlier run of this batch
            if name not in released and "quarantine_key" not in source:
                leaving.append(name)  # (removed only if still the file the batch was made of)
        elif "quarantine_key" in source and not store.exists(source["quarantine_key"]):
            files.append({**_missing(source), "source_name": name,
                          "reason": "gone_from_quarantine"})  # never an inbox namesake
        elif "quarantine_key" in source:
            path = local.enter_context(store.local_path(source["quarantine_key"]))
            inbox_paths[name], sources[name] = path, source
            released.add(name)
            tasks.append((name, timed_call, (stage_file, str(path), str(staging),
                                             rules.limits)))
        elif name is not None and drop.exists(name):
            path = local.enter_context(drop.local_path(name))
            inbox_paths[name] = path
            tasks.append((name, timed_call, (stage_file, str(path), str(staging),
                                             rules.limits, str(drop.root))))
        elif "content_id" in source:
            files.append(_from_store(store, source))
        else:
            files.append({**_missing(source), "source_name": shown.get(name, name or "?")})

    started = time.perf_counter()
    run_id = context.run.run_id

    def settle(name: str, outcome: Outcome) -> None:
        """Store (or quarantine) each file as soon as its worker has staged it."""
        staged, wall_ms, cpu_ms = outcome.value if outcome.ok else (None, 0.0, 0.0)
        meter = meter_of(store)
        if meter and staged is not None:
            meter.file(staged.content_id, staged.kind, name).add(
                cpu_seconds=cpu_ms / 1000, wall_seconds=wall_ms / 1000, bytes_read=staged.size)
        with meter.attributing(staged.content_id) if meter and staged else nullcontext():
            entry = _settle(store, name, shown.get(name, name), inbox_paths[name],
                            sources[name], staged, outcome.error, batch_key, run_id, staging,
                            None if name in released else str(drop.root))
        files.append(entry)
        if entry["status"] == "ok":
            log_file(context, "debug", "stored", entry["content_id"], entry["source_name"],
                     ms=wall_ms, cpu_ms=cpu_ms, bytes=entry.get("bytes"))
        else:
            log_file(context, "warning", entry["status"], entry.get("content_id"),
                     entry["source_name"], stage="originals", reason=entry.get("reason"))
        if name in released:
            return  # its bytes came from quarantine, not the inbox: nothing leaves
        if entry["status"] in SAFE:
            leaving.append(name)
        elif entry["status"] == "unreadable":
            mark_unreadable(store, name, sources[name]["size"], sources[name]["mtime"],
                            entry["detail"])

    try:
        workers.run(tasks, rules.limits, on_outcome=settle)
    finally:
        local.close()
        shutil.rmtree(staging, ignore_errors=True)  # incl. partial copies of killed workers
    elapsed = time.perf_counter() - started
    mark_repeats(files)

    # Bytes that retention had purged and that just arrived again are hot again.
    revive(store, {f["content_id"] for f in files
                   if f["status"] == "ok" and store.exists(f["original_key"])})
    manifest["files"] = sorted(files, key=lambda f: f["source_name"])
    manifest["intake_run_id"] = run_id
    manifest["policy_version"] = rules.stamp
    save_manifest(store, manifest)
    # Files leave the inbox only now: their bytes are stored and verified (or quarantined)
    # and the manifest that links each name to its content id is durable. A file that was
    # replaced or modified since the sensor saw it stays for the next batch.
    kept = [name for name in leaving
            if not drop.remove_if_unchanged(name, sources[name]["size"], sources[name]["mtime"])]
    close_batch(store, batch_key)
    metadata = {**_summary(manifest["files"], elapsed),
                **record_usage(context, store, "originals", manifest["files"])}
    if kept:
        metadata["left_in_inbox"] = MetadataValue.json(kept)  # changed since listed, read-only
    return MaterializeResult(metadata=metadata)


# Outcomes whose bytes are in the store or in quarantine: only those files leave the inbox.
SAFE = ("ok", "quarantined")


def mark_repeats(files: list[dict[str, Any]]) -> None:
    """The same bytes under several names in one batch: the first name (in name order) is
    the arrival, the later ones are duplicates. Decided by name once every file is settled,
    never by which worker finished first, so a rerun of the batch flags the same names."""
    seen: set[str] = set()
    for entry in sorted(files, key=lambda f: f["source_name"]):
        if entry["status"] != "ok":
            continue
        if entry["content_id"] in seen:
            entry["duplicate"] = True
        seen.add(entry["content_id"])


def _settle(store: Any, name: str, shown: str, inbox_path: Path, source: dict[str, Any],
            staged: StagedFile | None, error: Exception | None, batch_key: str,
            run_id: str, staging: Path, inbox_root: str | None) -> dict[str, Any]:
    """Move one staged file into the store (or quarantine) and describe the outcome.
    `name` finds the file; `shown` (its sanitised name) is what is recorded."""
    arrived = datetime.fromtimestamp(source.get("mtime", time.time()), UTC).isoformat()
    base = {"source_name": shown, "arrived_at": arrived,
            "intake_ms": staged.elapsed_ms if staged else None}
    if staged is None:  # the worker itself failed: keep the inbox bytes in quarantine
        reason = error.reason if isinstance(error, Rejected) else "intake_error"
        try:  # copied (never through a link, only a file of its own) while hashing
            content_id, copy = _copy_untrusted(inbox_path, staging, inbox_root)
        except OSError as exc:  # unreadable now: it stays in the inbox, nothing is lost
            return {**base, "content_id": None, "status": "unreadable", "kind": None,
                    "reason": "unreadable", "detail": f"{type(exc).__name__}: {exc}",
                    "duplicate": False}
        return _quarantined(store, base, content_id, reason, str(error), error,
                            batch_key, run_id, bytes_path=copy)
    staged_path = Path(staged.staged_path)
    base.update(content_id=staged.content_id, bytes=staged.size, kind=staged.kind,
                type=staged.type, width=staged.width, height=staged.height,
                duration_seconds=staged.duration_seconds)
    if staged.rejection:
        reason, detail = staged.rejection
        return _quarantined(store, base, staged.content_id, reason, detail, None,
                            batch_key, run_id, bytes_path=staged_path)
    key = original_key(staged.content_id, staged.extension)
    with_transient_retries(store.put_file_if_absent)(key, staged_path)
    if not _verified(store, key, staged.content_id):
        # An object that does not hash to its key is damaged: repair it from the verified
        # staged bytes. If even that does not verify, the store itself is failing.
        with_transient_retries(store.put_file)(key, staged_path)
        if not _verified(store, key, staged.content_id):
            store.delete(key)
            return _quarantined(store, base, staged.content_id, "fixity_mismatch",
                                "stored bytes differ from the source", None, batch_key,
                                run_id, bytes_path=staged_path)
    first = _first_arrival(store, staged, batch_key)
    return {**base, "status": "ok", "duplicate": not first, "original_key": key,
            "reason": None, "detail": None}


def _copy_untrusted(path: Path, staging: Path, inbox_root: str | None) -> tuple[str, Path]:
    """(content id, staged copy) of an inbox file, read without following links."""
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=staging, prefix=".failed.tmp-")
    with open_untrusted(path, inbox_root) as src, os.fdopen(fd, "wb") as dst:
        while chunk := src.read(1024 * 1024):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest(), Path(tmp)


def _verified(store: Any, key: str, content_id: str) -> bool:
    with store.local_path(key) as stored:
        return hash_file(stored) == content_id


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
    kind = sniffed.kind
    if kind in ("video", "audio"):  # an MP4 may hold only audio: its metadata says which
        kind = "audio" if store.exists(metadata_key(cid, "audio-v1")) else "video"
    return {**base, "status": "ok", "original_key": matches[0], "kind": kind,
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
            ("reason", "string"), ("kind", "string"), ("type", "string"), ("width", "int"),
            ("height", "int"), ("duration_seconds", "float"), ("bytes", "int"),
        ]),
    }
