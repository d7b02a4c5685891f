"""Cost accounting: what each step consumed (CPU and wall seconds per file, bytes read,
bytes written per storage tier, store requests), kept as Parquet records under
`usage/records/date=D/` and aggregated per day. Pure, no Dagster.

A `Meter` is created when a step starts; the step's store is wrapped in a `MeteredStore`
that counts its traffic. Work done for one file (its worker's CPU and wall time, the bytes
it read and wrote) is attributed to it; the step's own overhead (its process's CPU, manifests,
catalog fragments) is shared evenly by the files the step processed."""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from media_assets.core.store import ObjectStore

USAGE_PREFIX = "usage/records/"
COUNTERS = ("cpu_seconds", "wall_seconds", "bytes_read", "bytes_written_hot",
            "bytes_written_cold", "requests")
USAGE_SCHEMA = pa.schema([
    pa.field("recorded_at", pa.string(), nullable=False),
    pa.field("asset", pa.string(), nullable=False),
    pa.field("batch_key", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("content_id", pa.string(), nullable=False),  # "" = a step that processed none
    pa.field("media_kind", pa.string(), nullable=False),
    pa.field("folder", pa.string(), nullable=False),
    pa.field("cpu_seconds", pa.float64(), nullable=False),
    pa.field("wall_seconds", pa.float64(), nullable=False),
    pa.field("bytes_read", pa.int64(), nullable=False),
    pa.field("bytes_written_hot", pa.int64(), nullable=False),
    pa.field("bytes_written_cold", pa.int64(), nullable=False),
    pa.field("requests", pa.int64(), nullable=False),
])


def source_folder(source_name: str) -> str:
    """The inbox's top-level folder a file arrived in ("" = the inbox root)."""
    return source_name.split("/", 1)[0] if "/" in source_name else ""


@dataclass
class Use:
    """Counters of one file, or of a step's overhead."""

    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    bytes_read: int = 0
    bytes_written_hot: int = 0
    bytes_written_cold: int = 0
    requests: int = 0

    def add(self, **amounts: float) -> None:
        for name, amount in amounts.items():
            setattr(self, name, getattr(self, name) + amount)


@dataclass
class Meter:
    """One step's consumption, from its start (creation) to `rows()`."""

    started_wall: float = field(default_factory=time.perf_counter)
    started_cpu: float = field(default_factory=time.process_time)
    files: dict[str, Use] = field(default_factory=dict)
    about: dict[str, tuple[str, str]] = field(default_factory=dict)  # cid -> (kind, folder)
    overhead: Use = field(default_factory=Use)
    _current: str | None = None

    def file(self, content_id: str, media_kind: str | None, source_name: str) -> Use:
        """The counters of one file (created on first use)."""
        self.about.setdefault(content_id, (media_kind or "-", source_folder(source_name)))
        return self.files.setdefault(content_id, Use())

    @contextlib.contextmanager
    def attributing(self, content_id: str) -> Iterator[None]:
        """Store traffic inside this block is the file's (it must be known to `file`)."""
        previous, self._current = self._current, content_id
        try:
            yield
        finally:
            self._current = previous

    def traffic(self, **amounts: float) -> None:
        target = self.files.get(self._current) if self._current else None
        (target or self.overhead).add(**amounts)

    def rows(self, asset: str, batch_key: str, run_id: str, now: datetime) -> list[dict]:
        """One record per file; the step's own CPU and store overhead shared evenly."""
        step_cpu = max(0.0, time.process_time() - self.started_cpu)
        step_wall = max(0.0, time.perf_counter() - self.started_wall)
        base = {"recorded_at": now.isoformat(), "asset": asset, "batch_key": batch_key,
                "run_id": run_id}
        if not self.files:
            return [{**base, "content_id": "", "media_kind": "-", "folder": "-",
                     **_counters(self.overhead, step_cpu, step_wall, 1)}]
        share = len(self.files)  # a file with no worker time shares the step's wall time
        return [{**base, "content_id": cid, "media_kind": self.about[cid][0],
                 "folder": self.about[cid][1],
                 **_counters(use, step_cpu, 0.0 if use.wall_seconds else step_wall, share,
                             self.overhead)}
                for cid, use in sorted(self.files.items())]

    def step_wall_seconds(self) -> float:
        return round(time.perf_counter() - self.started_wall, 3)


def _counters(use: Use, step_cpu: float, step_wall: float, share: int,
              overhead: Use | None = None) -> dict[str, Any]:
    extra = overhead or Use()
    return {
        "cpu_seconds": round(use.cpu_seconds + step_cpu / share, 6),
        "wall_seconds": round(use.wall_seconds + step_wall / share, 6),
        "bytes_read": use.bytes_read + extra.bytes_read // share,
        "bytes_written_hot": use.bytes_written_hot + extra.bytes_written_hot // share,
        "bytes_written_cold": use.bytes_written_cold + extra.bytes_written_cold // share,
        "requests": use.requests + -(-extra.requests // share),
    }


class MeteredStore:
    """An object store that counts every request and byte into a `Meter`."""

    def __init__(self, store: ObjectStore, meter: Meter | None = None) -> None:
        self.inner, self.meter = store, meter or Meter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    # Forwarded uncounted (as `__getattr__` did), spelled out for the ObjectStore protocol.
    @property
    def links_staged_files(self) -> bool:
        return self.inner.links_staged_files

    def staging_dir(self) -> Path:
        return self.inner.staging_dir()

    def describe(self, key: str) -> str:
        return self.inner.describe(key)

    def tier(self, key: str) -> str | None:
        return self.inner.tier(key)

    def free_bytes(self) -> int | None:
        return self.inner.free_bytes()

    def _count(self, **amounts: float) -> None:
        self.meter.traffic(requests=1, **amounts)

    def put_file(self, key: str, source: Path) -> None:
        self.inner.put_file(key, source)
        self._count(bytes_written_hot=_size_of(source))

    def put_file_if_absent(self, key: str, source: Path) -> bool:
        written = self.inner.put_file_if_absent(key, source)
        self._count(bytes_written_hot=_size_of(source) if written else 0)
        return written

    def put_bytes(self, key: str, data: bytes) -> None:
        self.inner.put_bytes(key, data)
        self._count(bytes_written_hot=len(data))

    def put_bytes_if_absent(self, key: str, data: bytes) -> bool:
        written = self.inner.put_bytes_if_absent(key, data)
        self._count(bytes_written_hot=len(data) if written else 0)
        return written

    def read_bytes(self, key: str) -> bytes:
        data = self.inner.read_bytes(key)
        self._count(bytes_read=len(data))
        return data

    def open_read(self, key: str) -> BinaryIO:
        self._count(bytes_read=self.inner.size(key))
        return self.inner.open_read(key)

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        with self.inner.local_path(key) as path:
            self._count(bytes_read=path.stat().st_size)
            yield path

    def set_tier(self, key: str, tier: str) -> None:
        moved = self.inner.size(key) if self.inner.tier(key) != tier else 0
        self.inner.set_tier(key, tier)
        self._count(**{f"bytes_written_{tier}": moved} if tier in ("hot", "cold") else {})

    def list(self, prefix: str) -> Iterator[str]:
        self._count()
        return self.inner.list(prefix)

    def exists(self, key: str) -> bool:
        self._count()
        return self.inner.exists(key)

    def size(self, key: str) -> int:
        self._count()
        return self.inner.size(key)

    def delete(self, key: str) -> None:
        self._count()
        self.inner.delete(key)


def _size_of(source: Any) -> int:
    try:
        return source.stat().st_size
    except (AttributeError, OSError):
        return 0


def meter_of(store: ObjectStore) -> Meter | None:
    return store.meter if isinstance(store, MeteredStore) else None


def unwrapped(store: ObjectStore) -> ObjectStore:
    return store.inner if isinstance(store, MeteredStore) else store


def save_usage(store: ObjectStore, rows: list[dict[str, Any]], now: datetime) -> str:
    """Write a step's records as one new Parquet object (never counted as its own usage)."""
    table = pa.Table.from_pylist(rows, schema=USAGE_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    first = rows[0]
    key = (f"{USAGE_PREFIX}date={now.date().isoformat()}/{now.strftime('%H%M%S%f')}-"
           f"{first['asset']}-{first['batch_key']}-{first['run_id'][:8]}-"
           f"{uuid.uuid4().hex[:8]}.parquet")
    unwrapped(store).put_bytes(key, sink.getvalue())
    return key


def read_usage(store: ObjectStore, day: str) -> pl.DataFrame:
    """Every usage record of one UTC day (YYYY-MM-DD)."""
    store = unwrapped(store)
    keys = [k for k in store.list(f"{USAGE_PREFIX}date={day}/") if k.endswith(".parquet")]
    if not keys:
        empty = pl.from_arrow(USAGE_SCHEMA.empty_table())
        assert isinstance(empty, pl.DataFrame)  # a Table converts to a DataFrame
        return empty
    return pl.concat([pl.read_parquet(io.BytesIO(store.read_bytes(k))) for k in sorted(keys)])


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """A step's totals (for its materialisation's metadata)."""
    return {name: round(sum(r[name] for r in rows), 6) if name.endswith("seconds")
            else sum(r[name] for r in rows) for name in COUNTERS}


GROUP = ("asset", "media_kind", "folder")


def stored_bytes(view: pl.DataFrame, until: datetime) -> pl.DataFrame:
    """Bytes held per (media_kind, folder, tier) by the contents that had arrived by `until`,
    from the catalog's per-content view: originals in their tier, derivatives hot."""
    schema = {"media_kind": pl.String, "folder": pl.String, "tier": pl.String,
              "bytes": pl.Int64}
    if view.is_empty():
        return pl.DataFrame(schema=schema)
    held = view.filter(pl.col("first_arrived_at") <= until).with_columns(
        pl.col("media_kind").fill_null("-"),
        pl.col("source_names").list.first().map_elements(source_folder, return_dtype=pl.String)
        .alias("folder"))
    originals = held.filter(pl.col("tier").is_not_null() & (pl.col("status") == "ok")).select(
        "media_kind", "folder", "tier", pl.col("bytes").fill_null(0).cast(pl.Int64))
    derived = held.select("media_kind", "folder", "derivatives").explode("derivatives") \
        .drop_nulls("derivatives").select(
            "media_kind", "folder", pl.lit("hot").alias("tier"),
            pl.col("derivatives").struct.field("bytes").fill_null(0).cast(pl.Int64)
            .alias("bytes"))
    both = pl.concat([originals, derived])
    return both.group_by("media_kind", "folder", "tier").agg(pl.col("bytes").sum()) \
        .sort("media_kind", "folder", "tier") if both.height else pl.DataFrame(schema=schema)


def price_day(records: pl.DataFrame, stored: pl.DataFrame, prices: Any,
              days_in_month: int) -> pl.DataFrame:
    """The day's usage per (asset, media_kind, folder), priced: CPU by the hour, requests per
    thousand, and the storage held that day (asset `storage`) at its tier's GB-month / days."""
    work = records.group_by(*GROUP).agg(
        (pl.col("content_id") != "").sum().cast(pl.Int64).alias("files"),
        *[pl.col(name).sum() for name in COUNTERS])
    work = work.with_columns(
        (pl.col("cpu_seconds") / 3600 * prices.cpu_hour).alias("cost_cpu"),
        (pl.col("requests") / 1000 * prices.per_1000_requests).alias("cost_requests"),
        pl.lit(0, pl.Int64).alias("stored_bytes"), pl.lit(0.0).alias("cost_storage"))
    rate = {tier: price / days_in_month / 1e9 for tier, price in prices.gb_month.items()}
    held = stored.with_columns(
        pl.col("tier").replace_strict(rate, default=0.0, return_dtype=pl.Float64)
        .mul(pl.col("bytes")).alias("cost_storage")).group_by("media_kind", "folder").agg(
        pl.col("bytes").sum().alias("stored_bytes"), pl.col("cost_storage").sum()
    ).with_columns(pl.lit("storage").alias("asset"))
    priced = pl.concat([work, held], how="diagonal_relaxed").fill_null(0)
    return priced.with_columns(
        (pl.col("cost_cpu") + pl.col("cost_requests") + pl.col("cost_storage")).alias("cost")
    ).sort(*GROUP)


@dataclass(frozen=True)
class BudgetStatus:
    scope: str        # "all" or a folder ("" = inbox root)
    budget: float
    spent: float
    level: str        # ok | warning (>= warn_at) | over (>= 100 %)

    @property
    def describe(self) -> str:
        where = "the pipeline" if self.scope == "all" else f"folder {self.scope or '(root)'}"
        return (f"{where} has spent {self.spent:.4f} of its daily budget {self.budget:.4f} "
                f"({self.spent / self.budget:.0%})")


def budget_statuses(priced: pl.DataFrame, costs: Any) -> list[BudgetStatus]:
    """Each budget of the policy against the day's priced usage."""
    budgets = ([("all", costs.daily_budget)] if costs.daily_budget is not None else []) + \
        sorted(costs.folder_budgets.items())
    statuses = []
    for scope, budget in budgets:
        rows = priced if scope == "all" else priced.filter(pl.col("folder") == scope)
        spent = float(rows["cost"].sum()) if rows.height else 0.0
        ratio = spent / budget if budget > 0 else float("inf")
        level = "over" if ratio >= 1 else "warning" if ratio >= costs.warn_at else "ok"
        statuses.append(BudgetStatus(scope, float(budget), round(spent, 6), level))
    return statuses
