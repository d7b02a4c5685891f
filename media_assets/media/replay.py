"""Dead-letter replay: choose quarantined files by reason, stage or date and put them into
new batches, so they go through the normal assets again (e.g. after the operator raised a
limit). Each release is recorded in the audit log. Pure, no Dagster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from media_assets.media.audit import append, audit_record
from media_assets.media.batching import classify_lane
from media_assets.media.manifest import new_manifest, open_batch
from media_assets.media.policy import Batching


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
            actor: str, run_id: str | None, now: datetime | None = None,
            per_batch: int = 64) -> list[dict[str, Any]]:
    """Open replay batches (per lane) for the records whose bytes are still in quarantine.

    The inbox sensor registers and launches open batches it did not create itself, so the
    released files are processed within a tick, in their lane's job."""
    now = now or datetime.now(UTC)
    by_lane: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        key = record.get("bytes_key")
        if not key or not store.exists(key):
            continue  # purged by retention, or an empty file: nothing to retry
        with store.open_read(key) as handle:
            header = handle.read(batching.header_bytes)
        lane, _ = classify_lane(header, store.size(key), batching)
        by_lane.setdefault(lane, []).append(record)
    manifests = []
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    for lane, chosen in sorted(by_lane.items()):
        for start in range(0, len(chosen), per_batch):
            group = chosen[start:start + per_batch]
            sources = [{"quarantine_key": r["bytes_key"], "content_id": r["content_id"],
                        "source_name": r["source_name"]} for r in group]
            # 'r': a replay batch; the run id keeps two releases in one second apart
            key = f"{stamp}-r{len(manifests) + 1:03d}-{(run_id or 'manual')[:8]}"
            manifest = new_manifest(key, lane, sources, now, f"replay: {why}")
            open_batch(store, manifest)
            manifests.append(manifest)
            append(store, [audit_record("release", r["content_id"], source=r["bytes_key"],
                                        target=key, reason=f"{r['reason']} -> replay: {why}",
                                        run_id=run_id, actor=actor, now=now) for r in group])
    return manifests
