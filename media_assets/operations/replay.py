"""Dead-letter replay: choose quarantined files by reason, stage or date and put them into
new batches, so they go through the normal assets again (e.g. after the operator raised a
limit). Each release is recorded in the audit log. Pure, no Dagster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from media_assets.codec.cheap_probe import ReadRange
from media_assets.core.policy import Batching
from media_assets.operations.batching import classify_lane, lane_limits
from media_assets.records.audit import append, audit_record
from media_assets.records.manifest import BULK, new_manifest, open_batch


def select_quarantined(records: list[dict[str, Any]], *, reasons: list[str],
                       stages: list[str], error_classes: list[str], since: str,
                       until: str) -> list[dict[str, Any]]:
    """Records matching every given filter (an empty filter matches all), one per content."""
    chosen: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r["quarantined_at"]):
        at = record["quarantined_at"][:10]
        if reasons and record["reason"] not in reasons:
            continue
        if stages and record.get("stage") not in stages:
            continue
        if error_classes and record.get("error_class") not in error_classes:
            continue
        if (since and at < since) or (until and at > until):
            continue
        chosen.setdefault(record["content_id"], record)
    return list(chosen.values())


def release(store: Any, records: list[dict[str, Any]], batching: Batching, *, why: str,
            actor: str, run_id: str | None, now: datetime | None = None
            ) -> list[dict[str, Any]]:
    """Open small replay batches (per lane) for the records whose bytes are still in
    quarantine: at most `bulk_max_files` each, within the lane's own batch limits.

    The inbox sensor registers and launches open batches it did not create itself, so the
    released files are processed within a tick, in their lane's job, as bulk work."""
    now = now or datetime.now(UTC)
    by_lane: dict[str, list[tuple[dict[str, Any], int]]] = {}
    for record in records:
        key = record.get("bytes_key")
        if not key or not store.exists(key):
            continue  # purged by retention, or an empty file: nothing to retry
        with store.open_read(key) as handle:
            header = handle.read(batching.header_bytes)
        size = store.size(key)
        lane = classify_lane(header, size, batching, _ranged_reader(store, key)).lane
        by_lane.setdefault(lane, []).append((record, size))
    manifests = []
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    for lane, chosen in sorted(by_lane.items()):
        max_files, max_bytes = lane_limits(lane, batching)
        for group in _chunks(chosen, min(max_files, batching.bulk_max_files), max_bytes):
            sources = [{"quarantine_key": r["bytes_key"], "content_id": r["content_id"],
                        "source_name": r["source_name"]} for r in group]
            # 'r': a replay batch; the run id keeps two releases in one second apart
            key = f"{stamp}-r{len(manifests) + 1:03d}-{(run_id or 'manual')[:8]}"
            manifest = new_manifest(key, lane, sources, now, f"replay: {why}", work=BULK)
            open_batch(store, manifest)
            manifests.append(manifest)
            append(store, [audit_record("release", r["content_id"], source=r["bytes_key"],
                                        target=key, reason=f"{r['reason']} -> replay: {why}",
                                        run_id=run_id, actor=actor, now=now) for r in group])
    return manifests


def _ranged_reader(store: Any, key: str) -> ReadRange:
    """Ranged reads of a stored object, for the cheap probe (an MP4 index at the end)."""
    def read_range(offset: int, size: int) -> bytes:
        with store.open_read(key) as handle:
            handle.seek(offset)
            return handle.read(size)
    return read_range


def _chunks(items: list[tuple[dict[str, Any], int]], max_files: int,
            max_bytes: int) -> list[list[dict[str, Any]]]:
    """Consecutive groups of at most `max_files` records and `max_bytes` bytes (a single
    larger file goes alone)."""
    groups: list[list[dict[str, Any]]] = []
    size = 0
    for record, nbytes in items:
        if not groups or len(groups[-1]) >= max_files or size + nbytes > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(record)
        size += nbytes
    return groups
