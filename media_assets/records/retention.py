"""Retention: which originals are due for the cold tier or a purge, and which quarantined
bytes are due for a purge; applying a plan, and the lifecycle state the catalog shows (tier,
purged). Pure, no Dagster: the job wires it with a dry-run switch."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from media_assets.core.policy import Retention
from media_assets.records.audit import append, audit_record

LIFECYCLE_KEY = "catalog/lifecycle/state.parquet"
LIFECYCLE_SCHEMA = {"content_id": pl.String, "tier": pl.String, "purged_at": pl.String,
                    "purge_reason": pl.String}


@dataclass(frozen=True)
class RetentionAction:
    action: str  # "move" (to the cold tier) | "purge" | "purge_quarantine"
    content_id: str
    key: str
    retention_class: str
    reason: str


def protective(retention: Retention, names: list[str]) -> str:
    """Of the classes a content arrived under, the one that keeps its original longest."""
    def keep_key(name: str) -> tuple:
        rules = retention.classes[name]
        return (rules.purge_after_days is None, rules.purge_after_days or 0,
                rules.cold_after_days is None, rules.cold_after_days or 0)
    return max(names, key=keep_key)


def plan_retention(arrivals: pl.DataFrame, quarantine_records: list[dict[str, Any]],
                   retention: Retention, now: datetime,
                   tier_of: Callable[[str], str | None]) -> list[RetentionAction]:
    """What is due at `now`. A content is dated by when it was first catalogued (not by the
    file's mtime, which a copy may carry from years ago; and not by a rebuild, canary or
    rollback, which rewrite its rows but keep `first_cataloged_at`), and when it arrived
    under several classes (the same bytes in two folders) the most protective one holds."""
    actions: list[RetentionAction] = []
    ok = arrivals.filter((pl.col("status") == "ok") & pl.col("original_key").is_not_null()) \
        if arrivals.height else arrivals
    contents = ok.group_by("content_id").agg(
        pl.col("original_key").first(),
        pl.coalesce(*(["first_cataloged_at"] if "first_cataloged_at" in ok.columns else []),
                    "cataloged_at").min().alias("arrived_at"),
        pl.col("source_name"), pl.col("retention")).sort("content_id") if ok.height else ok
    for row in contents.iter_rows(named=True):
        # the policy in force decides, for files already in the store too: a folder mapped
        # to a class later applies to what that folder brought before (the catalog's
        # `retention` column says the class when the row was written)
        names = [retention.class_of(n) for n in row["source_name"]]
        name = protective(retention, names)
        rules = retention.classes[name]
        if row["arrived_at"] is None:
            continue
        age = now - row["arrived_at"]
        tier = tier_of(row["original_key"])
        if tier is None:
            continue  # already purged
        if rules.purge_after_days is not None and age >= timedelta(days=rules.purge_after_days):
            actions.append(RetentionAction("purge", row["content_id"], row["original_key"], name,
                                           f"{name}: purge after {rules.purge_after_days} days"))
        elif (rules.cold_after_days is not None and tier == "hot"
              and age >= timedelta(days=rules.cold_after_days)):
            actions.append(RetentionAction("move", row["content_id"], row["original_key"], name,
                                           f"{name}: cold after {rules.cold_after_days} days"))
    if retention.quarantine_purge_after_days is not None:
        newest: dict[str, dict[str, Any]] = {}
        for record in quarantine_records:
            key = record.get("bytes_key")
            if key and record["quarantined_at"] > newest.get(key, {}).get("quarantined_at", ""):
                newest[key] = record
        limit = timedelta(days=retention.quarantine_purge_after_days)
        for key, record in sorted(newest.items()):
            if now - datetime.fromisoformat(record["quarantined_at"]) >= limit \
                    and tier_of(key) is not None:
                actions.append(RetentionAction(
                    "purge_quarantine", record["content_id"], key, "quarantine",
                    f"quarantine: purge after {retention.quarantine_purge_after_days} days"))
    return actions


def apply_retention(store: Any, actions: list[RetentionAction], *, run_id: str,
                    now: datetime) -> None:
    """Record, then move or delete what the plan says. The audit records and lifecycle state
    are written first: a run killed half-way leaves state that says more than was done, and
    the next run (which plans from what the store holds) finishes it."""
    audit, changes = [], []
    for action in actions:
        if action.action == "move":
            audit.append(audit_record("move", action.content_id, source=f"hot:{action.key}",
                                      target=f"cold:{action.key}", reason=action.reason,
                                      run_id=run_id, actor="retention", now=now))
            changes.append({"content_id": action.content_id, "tier": "cold"})
        else:
            audit.append(audit_record(action.action, action.content_id, source=action.key,
                                      reason=action.reason, run_id=run_id, actor="retention",
                                      now=now))
            if action.action == "purge":
                changes.append({"content_id": action.content_id, "tier": None,
                                "purged_at": now.isoformat(), "purge_reason": action.reason})
    append(store, audit)
    if changes:
        update_lifecycle(store, changes)
    for action in actions:
        if action.action == "move":
            store.set_tier(action.key, "cold")
        else:
            store.delete(action.key)


def revive(store: Any, content_ids: set[str]) -> None:
    """The same bytes arrived again after a purge: the content is hot again."""
    state = read_lifecycle(store)
    purged = set(state.filter(pl.col("purged_at").is_not_null())["content_id"]) & content_ids
    if purged:
        update_lifecycle(store, [{"content_id": cid, "tier": "hot"} for cid in sorted(purged)])


def read_lifecycle(store: Any) -> pl.DataFrame:
    if not store.exists(LIFECYCLE_KEY):
        return pl.DataFrame(schema=LIFECYCLE_SCHEMA)
    with store.local_path(LIFECYCLE_KEY) as path:
        return pl.read_parquet(path)


def update_lifecycle(store: Any, changes: list[dict[str, Any]]) -> None:
    """Upsert per-content state (rewritten whole, atomically: it is one row per content
    that ever left the hot tier, small next to the catalog)."""
    fresh = pl.DataFrame([{**dict.fromkeys(LIFECYCLE_SCHEMA), **c} for c in changes],
                         schema=LIFECYCLE_SCHEMA)
    state = pl.concat([read_lifecycle(store), fresh]).unique("content_id", keep="last")
    sink = io.BytesIO()
    state.sort("content_id").write_parquet(sink, compression="zstd")
    store.put_bytes(LIFECYCLE_KEY, sink.getvalue())


def purged_contents(store: Any) -> dict[str, str]:
    """Content id -> why its original was purged."""
    state = read_lifecycle(store).filter(pl.col("purged_at").is_not_null())
    return {row["content_id"]: row["purge_reason"] or "purged"
            for row in state.iter_rows(named=True)}


def with_lifecycle(arrivals: pl.DataFrame, lifecycle: pl.DataFrame) -> pl.DataFrame:
    """Arrival rows with `tier` (hot / cold / null once purged) and `purged_at` (a purge is
    undone by intake when the same bytes arrive again)."""
    stored = (pl.col("status") == "ok") & pl.col("original_key").is_not_null()
    if lifecycle.is_empty():
        return arrivals.with_columns(
            pl.when(stored).then(pl.lit("hot")).otherwise(None).alias("tier"),
            pl.lit(None, dtype=pl.String).alias("purged_at"))
    joined = arrivals.join(lifecycle.rename({"tier": "_tier"}).drop("purge_reason"),
                           on="content_id", how="left")
    return joined.with_columns(
        pl.when(pl.col("purged_at").is_not_null()).then(None)
        .when(pl.col("_tier").is_not_null()).then(pl.col("_tier"))
        .when(stored).then(pl.lit("hot")).otherwise(None).alias("tier"),
    ).drop("_tier")


def describe(actions: list[RetentionAction]) -> list[dict[str, Any]]:
    return [asdict(a) for a in actions]
