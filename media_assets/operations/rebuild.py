"""Rebuild requests: which derivatives to re-render, "missing" (missing or made with an older
spec, from the catalog's spec hashes) or "all" (every file of the chosen batches). A request
is written to the store; the rebuild sensor turns it into runs. Pure, no Dagster."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import polars as pl

from media_assets.core.policy import Policy
from media_assets.records.catalog import content_view, stale_derivatives

REQUESTS_PREFIX = "control/rebuild_requests/"


def plan_rebuild(arrivals: pl.DataFrame, policy: Policy, *, mode: str,
                 derivatives: list[str], batches: list[str]) -> pl.DataFrame:
    """(batch_key, media_kind, derivative, content_id, state) rows to re-render."""
    if mode not in ("missing", "all"):
        raise ValueError("mode must be 'missing' or 'all'")
    if mode == "missing":
        plan = stale_derivatives(arrivals, policy)
    else:
        view = content_view(arrivals)
        view = view.filter(pl.col("status") == "ok") if view.height else view
        rows = [(r["batch_key"], r["media_kind"], spec.name, r["content_id"], "all")
                for r in view.iter_rows(named=True) for spec in policy.wanted(r["media_kind"])]
        plan = pl.DataFrame(rows, orient="row", schema={
            "batch_key": pl.String, "media_kind": pl.String, "derivative": pl.String,
            "content_id": pl.String, "state": pl.String})
    if derivatives:
        plan = plan.filter(pl.col("derivative").is_in(derivatives))
    if batches:
        plan = plan.filter(pl.col("batch_key").is_in(batches))
    return plan.sort("batch_key", "derivative", "content_id")


def save_request(store: Any, runs: list[dict[str, Any]], *, now: datetime,
                 run_id: str) -> str:
    """Record the runs an operator asked for; the rebuild sensor launches them."""
    key = f"{REQUESTS_PREFIX}{now.strftime('%Y%m%dT%H%M%S%f')}-{run_id[:8]}.json"
    store.put_bytes(key, json.dumps({"requested_at": now.isoformat(), "run_id": run_id,
                                     "runs": runs}, sort_keys=True).encode())
    return key


def pending_requests(store: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(key, json.loads(store.read_bytes(key))) for key in store.list(REQUESTS_PREFIX)
            if key.endswith(".json")]
