"""Erase one content everywhere (a takedown, a privacy request): its original in any tier,
derivatives, metadata, quarantined bytes and records, catalog rows, batch manifests, the
compacted index and the archive days that hold it. The audit log records the erasure by
content id and reason only. Pure, no Dagster."""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import polars as pl

from media_assets.core.policy import Policy
from media_assets.records.archive import (
    ARCHIVE_PREFIX,
    batch_day,
    build_day,
    collect,
    read_manifest,
    rows_of_day,
    write_day,
)
from media_assets.records.audit import append, audit_record
from media_assets.records.catalog import (
    CATALOG_INDEX_PREFIX,
    compact,
    fragment_bytes,
    fragment_key,
    latest_fragments,
    read_arrivals,
    read_index_manifest,
)
from media_assets.records.layout import (
    CATALOG_FRAGMENTS_PREFIX,
    first_arrival_key,
    metadata_key,
    quarantine_blob_key,
    spec_output_key,
)
from media_assets.records.manifest import load_manifest, save_manifest
from media_assets.records.retention import LIFECYCLE_KEY, read_lifecycle


def erase_content(store: Any, content_id: str, reason: str, *, policy: Policy,
                  metadata_versions: list[str], run_id: str, actor: str,
                  now: datetime) -> dict[str, Any]:
    """Remove every trace of `content_id`; returns what was removed or rewritten."""
    if len(content_id) != 64 or not all(c in "0123456789abcdef" for c in content_id):
        raise ValueError("erasure needs the full 64-hex-digit content id")
    arrivals = read_arrivals(store)
    rows = arrivals.filter(pl.col("content_id") == content_id)
    batches = sorted(set(rows["batch_key"]))
    deleted = _delete_objects(store, content_id, rows, policy, metadata_versions, batches)
    for batch in batches:
        _rewrite_fragment(store, batch, content_id, now, run_id)
        _scrub_batch(store, batch, content_id)
    index_rewritten = _rewrite_index(store, content_id, now)
    _drop_lifecycle(store, content_id)
    days = _rewrite_archive_days(store, content_id, batches, now, run_id)
    append(store, [audit_record("erase", content_id, reason=reason, run_id=run_id,
                                actor=actor, now=now)])
    return {"content_id": content_id, "objects_deleted": len(deleted),
            "batches_rewritten": batches, "index_rewritten": index_rewritten,
            "archive_days_rewritten": days}


def _delete_objects(store: Any, cid: str, rows: pl.DataFrame, policy: Policy,
                    metadata_versions: list[str], batches: list[str]) -> list[str]:
    shard = f"{cid[:2]}/{cid[2:4]}/"
    keys = {k for k in store.list(f"originals/{shard}") if cid in k}
    keys |= {quarantine_blob_key(cid), first_arrival_key(cid)}
    keys |= {metadata_key(cid, version) for version in metadata_versions}
    # Derivatives of older specs and metadata of older extractors: keys end in the content id.
    keys |= {k for prefix in ("derived/", "metadata/") for k in store.list(prefix)
             if f"/{shard}{cid}." in k}
    for kind in ("image", "video", "audio"):
        for spec in (*policy.wanted(kind), policy.derivative("thumbnail")):
            key = spec_output_key(spec, cid)
            keys |= {key, key.rsplit(".", 1)[0] + ".png"}
    for derivatives in rows["derivatives"].to_list() if rows.height else []:
        keys |= {d["key"] for d in derivatives or []}
    keys |= {r for r in rows["original_key"].drop_nulls()} if rows.height else set()
    keys |= {k for k in store.list("quarantine/records/")
             if k.rsplit("/", 1)[-1].startswith(cid)}
    deleted = sorted(k for k in keys if store.exists(k))
    for key in deleted:
        store.delete(key)
    return deleted


def _rewrite_fragment(store: Any, batch: str, cid: str, now: datetime, run_id: str) -> None:
    """The batch's newest fragment without the content's rows, under a new name."""
    latest = latest_fragments(store.list(f"{CATALOG_FRAGMENTS_PREFIX}{batch}/"))
    if batch not in latest:
        return
    with store.local_path(latest[batch]) as path:
        kept = pl.read_parquet(path).filter(pl.col("content_id") != cid)
    new_key = fragment_key(batch, now, run_id)
    store.put_bytes(new_key, fragment_bytes(kept.drop("schema_version").to_dicts()))
    for key in store.list(f"{CATALOG_FRAGMENTS_PREFIX}{batch}/"):
        if key != new_key:
            store.delete(key)


def _scrub_batch(store: Any, batch: str, cid: str) -> None:
    """Remove the content's names from the batch manifest and per-step results."""
    manifest = load_manifest(store, batch)
    if manifest is not None:
        names = {f["source_name"] for f in manifest.get("files") or []
                 if f.get("content_id") == cid}
        manifest["files"] = [f for f in manifest.get("files") or []
                             if f.get("content_id") != cid]
        manifest["sources"] = [s for s in manifest["sources"]
                               if s.get("inbox") not in names and s.get("content_id") != cid]
        manifest["erased"] = manifest.get("erased", 0) + len(names)
        save_manifest(store, manifest)
    for key in store.list(f"batches/results/{batch}/"):
        data = json.loads(store.read_bytes(key))
        cleaned = {k: ({i: v for i, v in value.items() if i != cid}
                       if isinstance(value, dict) else value)
                   for k, value in data.items() if k != cid}
        store.put_bytes(key, json.dumps(cleaned, sort_keys=True).encode())


def _rewrite_index(store: Any, cid: str, now: datetime) -> bool:
    """Recompact without the content, then delete every older index (they hold it)."""
    if read_index_manifest(store) is None:
        return False
    fresh = compact(store, now)
    stamp = fresh["index_key"].rsplit("index-", 1)[1].removesuffix(".parquet")
    keep = {fresh["index_key"], f"{CATALOG_INDEX_PREFIX}manifest-{stamp}.json"}
    for key in store.list(CATALOG_INDEX_PREFIX):
        if key not in keep:
            store.delete(key)
    return True


def _drop_lifecycle(store: Any, cid: str) -> None:
    state = read_lifecycle(store)
    if state.height and cid in set(state["content_id"]):
        sink = io.BytesIO()
        state.filter(pl.col("content_id") != cid).write_parquet(sink, compression="zstd")
        store.put_bytes(LIFECYCLE_KEY, sink.getvalue())


def _archived_days(store: Any) -> list[Any]:
    """Every archived day (from its manifest): an erasure retried after a failure no longer
    finds the content in the catalog, but must still find it in the archive."""
    from datetime import date

    return [date.fromisoformat(k.split("date=", 1)[1][:10]) for k in store.list(ARCHIVE_PREFIX)
            if k.endswith("/manifest.json") and "/history/" not in k]


def _rewrite_archive_days(store: Any, cid: str, batches: list[str], now: datetime,
                          run_id: str) -> list[str]:
    """Archive days that held the content, as a new manifest version; the old version's data
    files are removed at once (not after a grace period) and its manifest lists the erasure."""
    rewritten = []
    arrivals = read_arrivals(store)
    days = {batch_day(b) for b in batches} | set(_archived_days(store))
    for day in sorted(days):
        manifest = read_manifest(store, day)
        if manifest is None or cid not in manifest["content_ids"]:
            continue
        files, new = build_day(rows_of_day(arrivals, day), day)
        provenance = {"run_id": run_id, "created_at": now.isoformat(), "reason": "erasure"}
        written = write_day(store, day, files, new, provenance, erased=[cid])
        collect(store, day, written["superseded_files"])
        rewritten.append(day.isoformat())
    return rewritten
