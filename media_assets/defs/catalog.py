"""`catalog`: one Parquet fragment of arrival rows per batch (rewritten whole when the batch is
re-materialised, so nothing is double-counted), read together with the compacted index."""


import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from PIL import Image

from media_assets.core.policy import Policy
from media_assets.defs.av_derivatives import av_assets, rendition_key, waveform_image_key
from media_assets.defs.batch_pass import INTAKE_VERSION, batch_pass
from media_assets.defs.common import STORAGE_RETRY, record_usage, require_intake, table
from media_assets.defs.partitions import OWNERS, batch_partitions, media_tags, one_run_per_batch
from media_assets.defs.resources import MediaStorage, PolicyResource
from media_assets.operations.breaker import breaker_reason, record_outcomes
from media_assets.records.catalog import fragment_bytes, fragment_key, read_batch_fragment
from media_assets.records.layout import CATALOG_FRAGMENTS_PREFIX, spec_output_key
from media_assets.records.links import live_photo_id, name_stem
from media_assets.records.manifest import load_step_results, quarantine_records
from media_assets.records.metadata import METADATA_VERSIONS, load_metadata

CATALOG_VERSION = "catalog-1"


@asset(
    deps=[*(k for k in batch_pass.keys if k.to_user_string() != "originals"), *av_assets],
    partitions_def=batch_partitions,
    backfill_policy=one_run_per_batch,
    code_version=CATALOG_VERSION,
    retry_policy=STORAGE_RETRY,
    group_name="catalog",
    owners=OWNERS,
    tags=media_tags("all"),
    kinds={"parquet", "polars"},
)
def catalog(
    context: AssetExecutionContext, storage: MediaStorage, policy: PolicyResource
) -> MaterializeResult:
    """The batch's arrival rows: origin, checksum, metadata, derivatives, rights, versions."""
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    batch_key = context.partition_key
    manifest = require_intake(store, batch_key)
    now = datetime.now(UTC)
    previous = previous_rows(store, batch_key)
    code_versions = json.dumps(asset_code_versions(), sort_keys=True)
    rows = build_rows(store, manifest, rules, previous, now=now, run_id=context.run.run_id,
                      code_versions=code_versions)
    key = fragment_key(batch_key, now, context.run.run_id)
    store.put_bytes(key, fragment_bytes(rows))
    retried = {f["source_name"]: f.get("retried") for f in manifest["files"]}
    record_outcomes(store, manifest.get("lane") or "image", batch_key,
                    [breaker_reason(r["status"], r["reason"], retried.get(r["source_name"]))
                     for r in rows])
    for older in store.list(f"{CATALOG_FRAGMENTS_PREFIX}{batch_key}/"):
        if older < key:  # superseded; a newer one (a concurrent run's) is left alone
            store.delete(older)
    ok = [r for r in rows if r["status"] == "ok"]
    return MaterializeResult(metadata={
        "dagster/row_count": len(rows),
        "ok": len(ok),
        **_throughput(context, len(rows)),
        **{f"quarantined_{reason}": count for reason, count in sorted(Counter(
            r["reason"] or "unknown" for r in rows if r["status"] != "ok").items())},
        "quarantined": len(rows) - len(ok),
        "duplicates": sum(bool(r["duplicate"]) for r in rows),
        "fragment": MetadataValue.path(store.describe(key)),
        "policy_version": rules.stamp,
        **record_usage(context, store, "catalog", manifest["files"]),
        "rows": table([{**r, "derivative_keys": " ".join(d["key"] for d in r["derivatives"])}
                       for r in rows], [
            ("source_name", "string"), ("content_id", "string"), ("status", "string"),
            ("reason", "string"), ("media_kind", "string"), ("media_type", "string"),
            ("width", "int"), ("height", "int"), ("duration_seconds", "float"),
            ("bytes", "int"), ("intake_ms", "float"), ("metadata_ms", "float"),
            ("derivatives_ms", "float"), ("derivative_keys", "string"),
        ]),
    })


def _throughput(context: AssetExecutionContext, files: int) -> dict[str, float]:
    """The batch's files per second, from its run's start to now (queue wait excluded)."""
    stats = context.instance.get_run_stats(context.run.run_id)
    if not stats.start_time:
        return {}
    seconds = max(1e-3, datetime.now(UTC).timestamp() - stats.start_time)
    return {"batch_seconds": round(seconds, 3), "files_per_second": round(files / seconds, 3)}


def asset_code_versions() -> dict[str, str]:
    """The code version of every asset that shaped the batch's rows."""
    versions = {"originals": INTAKE_VERSION, "catalog": CATALOG_VERSION}
    for assets_def in (batch_pass, *av_assets):
        for key, version in assets_def.code_versions_by_key.items():
            versions[key.to_user_string()] = version or ""
    return versions


@dataclass(frozen=True)
class Previous:
    """What this batch's last fragment recorded, per content: its derivatives (kept if still
    in the store) and when it was first catalogued (kept through every rewrite)."""

    derivatives: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    first_cataloged: dict[str, datetime] = field(default_factory=dict)


def previous_rows(store: Any, batch_key: str) -> Previous:
    frame = read_batch_fragment(store, batch_key)
    if frame is None:
        return Previous()
    first = "first_cataloged_at" if "first_cataloged_at" in frame.columns else "cataloged_at"
    return Previous(
        {row["content_id"]: row["derivatives"] or [] for row in frame.iter_rows(named=True)},
        {row["content_id"]: row[first] or row["cataloged_at"]
         for row in frame.iter_rows(named=True)})


def build_rows(store: Any, manifest: dict[str, Any], rules: Policy, previous: Previous, *,
               now: datetime, run_id: str, code_versions: str) -> list[dict[str, Any]]:
    """One arrival row per file of the batch, from the manifest and what the store holds."""
    batch_key = manifest["batch_key"]
    # when the files were taken in (their batch opened): the first catalogued time of a
    # content new here, recoverable from the manifest even if the catalog is lost
    taken = _parse_time(manifest.get("created_at")) or now
    quarantined = quarantine_records(store, batch_key)
    steps = {name: load_step_results(store, batch_key, name).get("ms", {}) for name in STEPS}
    plans = load_step_results(store, batch_key, "web_rendition_plans")
    rows = []
    for entry in manifest["files"]:
        cid = entry.get("content_id") or "unknown"
        record = quarantined.get(cid)
        kind = entry.get("kind")
        meta = (load_metadata(store, cid, METADATA_VERSIONS[kind])
                if entry["status"] == "ok" and kind in METADATA_VERSIONS else {})
        status = "quarantined" if record else entry["status"]  # also missing, unreadable
        video = (meta.get("video") or [{}])[0]
        audio = (meta.get("audio") or [{}])[0]
        rows.append({
            "content_id": cid,
            "source_name": entry["source_name"],
            "batch_key": batch_key,
            "lane": manifest.get("lane"),
            "arrived_at": _parse_time(entry.get("arrived_at")),
            "cataloged_at": now,
            "first_cataloged_at": min(previous.first_cataloged.get(cid, taken), taken),
            "status": status,
            "duplicate": bool(entry.get("duplicate")),
            "reason": (record or {}).get("reason") or entry.get("reason"),
            "detail": (record or {}).get("detail") or entry.get("detail"),
            "media_kind": kind,
            "media_type": entry.get("type"),
            "bytes": entry.get("bytes"),
            "width": meta.get("display_width") or entry.get("width"),
            "height": meta.get("display_height") or entry.get("height"),
            "duration_seconds": meta.get("duration_seconds") or entry.get("duration_seconds"),
            "video_codec": video.get("codec"),
            "audio_codec": audio.get("codec"),
            "live_photo_id": live_photo_id(meta),
            "name_stem": name_stem(entry["source_name"]),
            "original_key": entry.get("original_key"),
            "quarantine_key": (record or {}).get("bytes_key") or entry.get("quarantine_key"),
            "capture_time": meta.get("capture_time") or meta.get("creation_time"),
            "camera": " ".join(filter(None, [meta.get("camera_make"),
                                             meta.get("camera_model")])) or None,
            "gps_present": meta.get("gps_present"),
            "creator": meta.get("artist"),
            "rights": meta.get("copyright") or (meta.get("tags") or {}).get("copyright"),
            "retention": rules.retention.class_of(entry["source_name"]),
            "metadata_json": json.dumps(meta, sort_keys=True) if meta else None,
            "derivatives": _derivatives(store, entry, kind, rules,
                                        previous.derivatives.get(cid, []),
                                        plans.get(cid, {}))
            if status == "ok" else [],
            "intake_ms": entry.get("intake_ms"),
            "metadata_ms": _step_ms(steps, cid, "image_metadata", "video_metadata",
                                    "audio_metadata"),
            "derivatives_ms": _step_ms(steps, cid, "derivatives", "poster", "web_rendition",
                                       "audio_preview", "waveform"),
            "code_versions": code_versions,
            "policy_version": rules.stamp,
            "run_id": run_id,
        })
    return rows


STEPS = ("image_metadata", "video_metadata", "audio_metadata", "derivatives", "poster",
         "web_rendition", "audio_preview", "waveform")


def _step_ms(steps: dict[str, dict[str, float]], cid: str, *names: str) -> float | None:
    """A file's milliseconds summed over the steps that worked on it (None if none did)."""
    spent = [steps[name][cid] for name in names if cid in steps.get(name, {})]
    return round(sum(spent), 2) if spent else None


def _derivatives(store: Any, entry: dict[str, Any], kind: str | None, rules: Policy,
                 previous: list[dict[str, Any]], plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Current-spec derivatives that exist; otherwise the older ones still in the store."""
    older = {d["name"]: d for d in previous}
    cid = entry["content_id"]
    specs = list(rules.wanted_for(kind or "", cid))  # a canary's spec, where one applies
    if kind == "audio":  # from cover art, when there is one
        specs.append(rules.derivative_for("thumbnail", cid))
    found = []
    for spec in specs:
        key = spec_output_key(spec, cid)
        if spec.name == "web_rendition":
            key = rendition_key(plan, spec, cid, entry.get("original_key") or "")
        if key and store.exists(key):
            found.append(_describe(store, spec.name, key, spec.spec_hash, plan))
            if spec.name == "waveform":
                image_key = waveform_image_key(spec, cid)
                found.append(_describe(store, "waveform_image", image_key, spec.spec_hash))
        elif spec.name in older and store.exists(older[spec.name]["key"]):
            found.append(older[spec.name])
            if f"{spec.name}_image" in older:
                found.append(older[f"{spec.name}_image"])
    return found


def _describe(store: Any, name: str, key: str, spec_hash: str,
              plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """A derivative's entry. Image sizes come from the header; a rendition's from what the
    web_rendition step decided (no video is parsed in the run's own process)."""
    width = height = None
    if key.rsplit(".", 1)[-1] in ("webp", "jpg", "png"):
        with store.local_path(key) as path, Image.open(path) as im:
            width, height = im.size
    elif key.endswith(".mp4") and plan:
        width, height = plan.get("width") or None, plan.get("height") or None
    return {"name": name, "key": key, "spec_hash": spec_hash, "width": width,
            "height": height, "bytes": store.size(key)}


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
