"""The catalog: append-only Parquet fragments of arrival rows, one per batch, plus a compacted
index. The per-content view (one row per content id) is derived, never stored by hand."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from media_assets.core.policy import Policy
from media_assets.records.layout import (
    CATALOG_FRAGMENTS_PREFIX,
    CATALOG_INDEX_PREFIX,
)
from media_assets.records.links import with_links
from media_assets.records.retention import read_lifecycle, with_lifecycle

# 2: video/audio columns and links; 3: first_cataloged_at (each nullable: older rows read)
SCHEMA_VERSION = "3"

DERIVATIVE_TYPE = pa.struct([
    ("name", pa.string()), ("key", pa.string()), ("spec_hash", pa.string()),
    ("width", pa.int32()), ("height", pa.int32()), ("bytes", pa.int64()),
])

ARRIVAL_SCHEMA = pa.schema([
    pa.field("content_id", pa.string(), nullable=False),
    pa.field("source_name", pa.string(), nullable=False),
    pa.field("batch_key", pa.string(), nullable=False),
    pa.field("lane", pa.string()),
    pa.field("arrived_at", pa.timestamp("us", tz="UTC")),
    pa.field("cataloged_at", pa.timestamp("us", tz="UTC"), nullable=False),
    # when the content was first catalogued, kept through rebuilds: what retention ages from
    pa.field("first_cataloged_at", pa.timestamp("us", tz="UTC")),
    pa.field("status", pa.string(), nullable=False),  # ok | quarantined
    pa.field("duplicate", pa.bool_()),
    pa.field("reason", pa.string()),
    pa.field("detail", pa.string()),
    pa.field("media_kind", pa.string()),
    pa.field("media_type", pa.string()),
    pa.field("bytes", pa.int64()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("duration_seconds", pa.float64()),
    pa.field("video_codec", pa.string()),
    pa.field("audio_codec", pa.string()),
    pa.field("live_photo_id", pa.string()),  # pairs a live photo's still and its movie
    pa.field("name_stem", pa.string()),  # folder/stem: pairs a sidecar with its media file
    pa.field("original_key", pa.string()),
    pa.field("quarantine_key", pa.string()),
    pa.field("capture_time", pa.string()),
    pa.field("camera", pa.string()),
    pa.field("gps_present", pa.bool_()),
    pa.field("creator", pa.string()),
    pa.field("rights", pa.string()),
    pa.field("retention", pa.string()),
    pa.field("metadata_json", pa.string()),
    pa.field("derivatives", pa.list_(DERIVATIVE_TYPE)),
    pa.field("intake_ms", pa.float64()),
    pa.field("metadata_ms", pa.float64()),
    pa.field("derivatives_ms", pa.float64()),
    pa.field("code_versions", pa.string()),
    pa.field("policy_version", pa.string()),
    pa.field("run_id", pa.string()),
    pa.field("schema_version", pa.string(), nullable=False),
], metadata={"media_assets.schema_version": SCHEMA_VERSION})


def fragment_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    """Encode arrival rows as one Parquet fragment (zstd, explicit schema, sorted by id)."""
    completed = [{**row, "schema_version": SCHEMA_VERSION} for row in rows]
    completed.sort(key=lambda r: (r["content_id"], r["source_name"]))
    table = pa.Table.from_pylist(completed, schema=ARRIVAL_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def fragment_key(batch_key: str, written_at: datetime, run_id: str) -> str:
    """Each write of a batch's fragment gets a new, time-ordered name; the newest wins."""
    stamp = written_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{CATALOG_FRAGMENTS_PREFIX}{batch_key}/{stamp}-{run_id[:8]}.parquet"


def latest_fragments(keys: Iterable[str]) -> dict[str, str]:
    """Batch key -> its newest fragment key, from a listing of the fragments prefix."""
    latest: dict[str, str] = {}
    for key in keys:
        rest = key[len(CATALOG_FRAGMENTS_PREFIX):]
        batch, _, name = rest.rpartition("/")
        if batch and name.endswith(".parquet") and key > latest.get(batch, ""):
            latest[batch] = key
    return latest


def read_batch_fragment(store: Any, batch_key: str,
                        columns: list[str] | None = None) -> pl.DataFrame | None:
    """The newest fragment of one batch (None before its catalog was first written)."""
    latest = latest_fragments(store.list(f"{CATALOG_FRAGMENTS_PREFIX}{batch_key}/"))
    if batch_key not in latest:
        return None
    with store.local_path(latest[batch_key]) as path:
        return pl.read_parquet(path, columns=columns)


def empty_arrivals() -> pl.DataFrame:
    return pl.from_arrow(ARRIVAL_SCHEMA.empty_table())  # type: ignore[return-value]


def _read_parquet(store: Any, key: str, columns: list[str] | None = None,
                  where: pl.Expr | None = None) -> pl.DataFrame:
    """A Parquet object; `columns` and `where` are pushed down into the scan, so a narrow
    read of the big index touches only those columns and the row groups that can match."""
    with store.local_path(key) as path:
        if columns is None and where is None:
            return pl.read_parquet(path)
        frame = pl.scan_parquet(path)
        if where is not None:
            frame = frame.filter(where)
        return (frame.select(columns) if columns else frame).collect()


def read_index_manifest(store: Any) -> dict[str, Any] | None:
    manifests = sorted(k for k in store.list(CATALOG_INDEX_PREFIX) if k.endswith(".json"))
    return json.loads(store.read_bytes(manifests[-1])) if manifests else None


def read_arrivals(store: Any, attempts: int = 3, columns: list[str] | None = None,
                  where: pl.Expr | None = None) -> pl.DataFrame:
    """Every arrival row (only `columns`, only rows matching `where`): the compacted index plus
    the fragments written since it. A batch re-catalogued between listing and reading
    replaces its fragment: list again."""
    for attempt in range(attempts):
        try:
            return _read_arrivals_once(store, columns, where)
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _read_arrivals_once(store: Any, columns: list[str] | None = None,
                        where: pl.Expr | None = None) -> pl.DataFrame:
    latest = latest_fragments(store.list(CATALOG_FRAGMENTS_PREFIX))
    manifest = read_index_manifest(store)
    frames: list[pl.DataFrame] = []
    covered: dict[str, str] = manifest["fragments"] if manifest else {}
    fresh = {batch: key for batch, key in latest.items() if covered.get(batch) != key}
    wanted = None if columns is None else sorted({*columns, "batch_key"})
    if manifest:
        index = _read_parquet(store, manifest["index_key"], wanted, where)
        frames.append(index.filter(~pl.col("batch_key").is_in(list(fresh))))
    frames.extend(_read_parquet(store, key, wanted, where) for key in fresh.values())
    if not frames:
        empty = empty_arrivals()
        return empty.select(wanted) if wanted else empty
    return pl.concat(frames, how="diagonal_relaxed")


def read_fragments(store: Any, keys: Iterable[str]) -> pl.DataFrame:
    """The rows of some fragments (e.g. the batches catalogued since a point), with their
    contents' lifecycle, as `read_catalog` gives them."""
    frames = [_read_parquet(store, key) for key in keys]
    arrivals = pl.concat(frames, how="diagonal_relaxed") if frames else empty_arrivals()
    return with_lifecycle(arrivals, read_lifecycle(store))


def read_catalog(store: Any, columns: list[str] | None = None,
                 where: pl.Expr | None = None) -> pl.DataFrame:
    """Arrival rows plus each content's lifecycle: `tier` (hot / cold / null once purged)
    and `purged_at`. What people read; `read_arrivals` is what the catalog stores. A
    narrow read (`columns`, `where`) of a million-row catalog costs a fraction of a full one."""
    if columns is not None:
        columns = sorted({*columns, "content_id", "status", "original_key"})  # lifecycle
    return with_lifecycle(read_arrivals(store, columns=columns, where=where),
                          read_lifecycle(store))


# What `content_view` and the scans over it (stale derivatives, spec references, usage)
# need: not metadata, not timings.
STALE_COLUMNS = ["content_id", "source_name", "batch_key", "arrived_at", "cataloged_at",
                 "status", "media_kind", "derivatives", "live_photo_id", "name_stem"]


def compact(store: Any, now: datetime) -> dict[str, Any]:
    """Rewrite all arrival rows as one index sorted by content id, with a manifest of the
    fragments it covers. Fragments stay in place; readers skip the ones the index covers."""
    latest = latest_fragments(store.list(CATALOG_FRAGMENTS_PREFIX))
    arrivals = read_arrivals(store).sort("content_id")
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    index_key = f"{CATALOG_INDEX_PREFIX}index-{stamp}.parquet"
    sink = io.BytesIO()
    arrivals.write_parquet(sink, compression="zstd", row_group_size=100_000)
    store.put_bytes(index_key, sink.getvalue())
    manifest = {"index_key": index_key, "rows": arrivals.height, "fragments": latest,
                "schema_version": SCHEMA_VERSION, "created_at": now.isoformat()}
    store.put_bytes(f"{CATALOG_INDEX_PREFIX}manifest-{stamp}.json",
                    json.dumps(manifest, indent=1, sort_keys=True).encode())
    _drop_old_indexes(store)
    return manifest


INDEX_GENERATIONS_KEPT = 3  # readers of a slightly older manifest still find its index


def _drop_old_indexes(store: Any) -> None:
    manifests = sorted(k for k in store.list(CATALOG_INDEX_PREFIX) if k.endswith(".json"))
    for old in manifests[:-INDEX_GENERATIONS_KEPT]:
        stamp = old.rsplit("manifest-", 1)[1].removesuffix(".json")
        store.delete(f"{CATALOG_INDEX_PREFIX}index-{stamp}.parquet")
        store.delete(old)


def content_view(arrivals: pl.DataFrame) -> pl.DataFrame:
    """One row per content id: every name it arrived under, its latest state, and the
    contents linked to it (live photo halves, sidecars)."""
    if arrivals.is_empty():
        return with_links(arrivals.with_columns(pl.lit([]).alias("source_names")).head(0))
    latest = arrivals.sort("cataloged_at").group_by("content_id").last()
    names = arrivals.group_by("content_id").agg(
        pl.col("source_name").unique().sort().alias("source_names"),
        pl.col("batch_key").unique().sort().alias("batch_keys"),
        pl.col("arrived_at").min().alias("first_arrived_at"),
        pl.len().alias("arrivals"),
    )
    return with_links(latest.join(names, on="content_id")).sort("content_id")


def lookup(arrivals: pl.DataFrame, query: str) -> pl.DataFrame:
    """Arrival rows for a content id (full or a prefix of 8+ hex digits), a source name, or
    the key or path of an original or derivative (which names its content id)."""
    return arrivals.filter(lookup_filter(query)).sort("cataloged_at")


def lookup_filter(query: str) -> pl.Expr:
    """The rows `lookup` finds, as an expression (pushed down into a catalog read)."""
    query = query.strip()
    embedded = re.search(r"[0-9a-f]{64}", query.lower())
    if embedded and embedded.group(0) != query.lower():  # a store key or path: its content id
        query = embedded.group(0)
    by_id = pl.col("content_id").str.starts_with(query.lower()) if len(query) >= 8 else pl.lit(
        False
    )
    by_name = (pl.col("source_name") == query) | pl.col("source_name").str.ends_with(f"/{query}")
    return by_id | by_name


def find(store: Any, query: str) -> pl.DataFrame:
    """`lookup` on the store's catalog, reading only the row groups that can match."""
    return read_catalog(store, where=lookup_filter(query)).sort("cataloged_at")


def related_rows(store: Any, row: dict[str, Any]) -> pl.DataFrame:
    """The catalog rows that can be linked to `row` (same live photo id or name stem)."""
    keys = [pl.col(c) == row[c] for c in ("live_photo_id", "name_stem") if row.get(c)]
    where = pl.col("content_id") == row["content_id"]
    for key in keys:
        where = where | key
    return read_catalog(store, where=where)


def stale_derivatives(arrivals: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Per content: each derivative its kind should have that is missing, or was made with
    another spec than the policy's now. A thumbnail from audio cover art is optional: only a
    stale one counts. Vectorised (polars), so it stays fast on millions of rows."""
    schema = {"batch_key": pl.String, "media_kind": pl.String, "derivative": pl.String,
              "content_id": pl.String, "state": pl.String}
    view = content_view(arrivals)
    if view.is_empty():
        return pl.DataFrame(schema=schema)
    view = view.filter(pl.col("status") == "ok")
    if "purged_at" in view.columns:  # no original left to render from: not stale, gone
        view = view.filter(pl.col("purged_at").is_null())
    wanted_rows = [(kind, spec.name, spec.spec_hash, True)
                   for kind in ("image", "video", "audio") for spec in policy.wanted(kind)]
    thumbnail = policy.derivative("thumbnail")
    wanted_rows.append(("audio", thumbnail.name, thumbnail.spec_hash, False))
    wanted = pl.DataFrame(wanted_rows, schema=["media_kind", "derivative", "want", "required"],
                          orient="row")
    have = (view.select("content_id", "derivatives").explode("derivatives")
            .filter(pl.col("derivatives").is_not_null())
            .select("content_id",
                    pl.col("derivatives").struct.field("name").alias("derivative"),
                    pl.col("derivatives").struct.field("spec_hash").alias("got")))
    wanting = view.select("batch_key", "media_kind", "content_id").join(wanted, on="media_kind")
    bucket = pl.col("content_id").str.slice(0, 8).str.to_integer(base=16) / 2**32
    for name, canary in policy.canaries.items():  # canary contents want the canary's spec
        wanting = wanting.with_columns(
            pl.when((pl.col("derivative") == name) & (bucket < canary.fraction))
            .then(pl.lit(canary.spec.spec_hash)).otherwise(pl.col("want")).alias("want"))
    return (wanting
            .join(have, on=["content_id", "derivative"], how="left")
            .filter((pl.col("got").is_null() & pl.col("required"))
                    | (pl.col("got").is_not_null() & (pl.col("got") != pl.col("want"))))
            .select("batch_key", "media_kind", "derivative", "content_id",
                    pl.when(pl.col("got").is_null()).then(pl.lit("missing"))
                    .otherwise(pl.lit("stale")).alias("state"))
            .sort("batch_key", "derivative", "content_id"))
