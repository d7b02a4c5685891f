"""Batch manifests: a batch's membership, written durably before its partition exists and
completed by its run with the resolved content ids. Also the quarantine records."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from media_assets.core.policy import Spec
from media_assets.records.audit import append, audit_record
from media_assets.records.layout import (
    OPEN_BATCHES_PREFIX,
    batch_manifest_key,
    open_batch_marker_key,
    quarantine_blob_key,
    quarantine_record_key,
)


def _dump(data: Any) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True, default=str).encode()


# The kind of work a batch is: new files from the inbox, or bulk re-processing (replays),
# which the run queue puts behind uploads.
UPLOAD, BULK = "upload", "bulk"


def new_manifest(batch_key: str, lane: str, sources: list[dict[str, Any]],
                 created_at: datetime, reason: str = "", work: str = UPLOAD,
                 estimated_seconds: float | None = None) -> dict[str, Any]:
    """A batch's membership: each source is {'inbox': name, ...} or {'content_id': id};
    `estimated_seconds`, when the sensor sized the batch by work, is what it expected the
    batch to cost (CPU-seconds of one core), to compare with what the run took."""
    manifest = {"batch_key": batch_key, "lane": lane, "created_at": created_at.isoformat(),
                "closed_because": reason, "work": work, "sources": sources, "files": None}
    if estimated_seconds is not None:
        manifest["estimated_seconds"] = round(estimated_seconds, 3)
    return manifest


def work_of(manifest: dict[str, Any]) -> str:
    """UPLOAD or BULK; a manifest written before the field existed is bulk when none of its
    sources comes from the inbox."""
    if manifest.get("work"):
        return manifest["work"]
    return UPLOAD if any("inbox" in s for s in manifest["sources"]) else BULK


def open_batch(store: Any, manifest: dict[str, Any]) -> None:
    """Write the manifest, then the open marker that claims its inbox files."""
    key = manifest["batch_key"]
    store.put_bytes(batch_manifest_key(key), _dump(manifest))
    store.put_bytes(open_batch_marker_key(key), b"")


def load_manifest(store: Any, batch_key: str) -> dict[str, Any] | None:
    key = batch_manifest_key(batch_key)
    return json.loads(store.read_bytes(key)) if store.exists(key) else None


def save_manifest(store: Any, manifest: dict[str, Any]) -> None:
    store.put_bytes(batch_manifest_key(manifest["batch_key"]), _dump(manifest))


def close_batch(store: Any, batch_key: str) -> None:
    """Release the claim on the batch's inbox files (they have left the inbox by now)."""
    store.delete(open_batch_marker_key(batch_key))


def open_batch_keys(store: Any) -> list[str]:
    return [k[len(OPEN_BATCHES_PREFIX):] for k in store.list(OPEN_BATCHES_PREFIX)]


def claimed_inbox_names(store: Any) -> tuple[set[str], list[dict[str, Any]]]:
    """Inbox names held by open batches, and those batches' manifests."""
    names: set[str] = set()
    manifests = []
    for key in open_batch_keys(store):
        manifest = load_manifest(store, key)
        if manifest is None:
            continue
        manifests.append(manifest)
        names.update(s["inbox"] for s in manifest["sources"] if "inbox" in s)
    return names, manifests


def quarantine(store: Any, *, bytes_path: Path | None, content_id: str, batch_key: str,
               source_name: str, reason: str, detail: str, error_class: str, stage: str,
               run_id: str, now: datetime | None = None) -> str:
    """Keep the bad file's bytes (once per content) and a JSON record of why, per batch."""
    blob = quarantine_blob_key(content_id)
    if bytes_path is not None:
        store.put_file_if_absent(blob, bytes_path)
    record = {
        "content_id": content_id, "source_name": source_name, "reason": reason,
        "detail": detail, "error_class": error_class, "stage": stage, "batch_key": batch_key,
        "run_id": run_id, "quarantined_at": (now or datetime.now(UTC)).isoformat(),
        "bytes_key": blob,
    }
    store.put_bytes(quarantine_record_key(batch_key, content_id, source_name), _dump(record))
    append(store, [audit_record("quarantine", content_id, source=source_name, target=blob,
                                reason=reason, run_id=run_id, now=now)])
    return blob


def quarantine_records(store: Any, batch_key: str) -> dict[str, dict[str, Any]]:
    """Content id -> quarantine record, for one batch."""
    prefix = f"quarantine/records/{batch_key}/"
    return {
        Path(k).name.split(".")[0]: json.loads(store.read_bytes(k))
        for k in store.list(prefix) if k.endswith(".json")
    }


def all_quarantine_records(store: Any) -> list[dict[str, Any]]:
    return [json.loads(store.read_bytes(k)) for k in store.list("quarantine/records/")
            if k.endswith(".json")]


def save_step_timings(store: Any, batch_key: str, step: str, ms: dict[str, float]) -> None:
    """Per-file milliseconds of a step; files skipped by a rerun keep the time of the run
    that did their work."""
    merged = {**load_step_results(store, batch_key, step).get("ms", {}), **ms}
    store.put_bytes(f"batches/results/{batch_key}/{step}.json", _dump({"ms": merged}))


def save_step_results(store: Any, batch_key: str, step: str, values: dict[str, Any]) -> None:
    """Per-file results of a step (e.g. what the rendition decided), merged with earlier runs'."""
    merged = {**load_step_results(store, batch_key, step), **values}
    store.put_bytes(f"batches/results/{batch_key}/{step}.json", _dump(merged))


def load_step_results(store: Any, batch_key: str, step: str) -> dict[str, Any]:
    key = f"batches/results/{batch_key}/{step}.json"
    return json.loads(store.read_bytes(key)) if store.exists(key) else {}


UNREADABLE_PREFIX = "batches/unreadable/"


def mark_unreadable(store: Any, name: str, size: int, mtime: float, detail: str) -> None:
    """Remember an inbox file no run could read, so the sensor does not batch it again until
    it changes (size or mtime)."""
    key = UNREADABLE_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:16] + ".json"
    store.put_bytes(key, _dump({"name": name, "size": size, "mtime": mtime, "detail": detail}))


def unreadable_files(store: Any) -> dict[str, tuple[int, float]]:
    """Inbox name -> (size, mtime) it had when a run failed to read it."""
    found = {}
    for key in store.list(UNREADABLE_PREFIX):
        record = json.loads(store.read_bytes(key))
        found[record["name"]] = (record["size"], record["mtime"])
    return found


def record_spec(store: Any, spec: Spec) -> None:
    """Keep the spec behind a spec hash (once), so any derivative leads back to its spec."""
    store.put_bytes_if_absent(f"specs/{spec.name}/{spec.spec_hash}.json",
                              _dump({**spec.model_dump(), "spec_hash": spec.spec_hash}))


def load_spec(store: Any, name: str, spec_hash: str) -> dict[str, Any] | None:
    key = f"specs/{name}/{spec_hash}.json"
    return json.loads(store.read_bytes(key)) if store.exists(key) else None
