"""Reconcile the whole store against the catalog: orphans, missing files, duplicate rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from media_assets.records.layout import CATALOG_FRAGMENTS_PREFIX


@dataclass
class Reconciliation:
    orphan_originals: list[str] = field(default_factory=list)
    missing_originals: list[str] = field(default_factory=list)
    missing_derivatives: list[str] = field(default_factory=list)
    duplicate_rows: list[str] = field(default_factory=list)
    checked_contents: int = 0

    @property
    def clean(self) -> bool:
        return not (self.orphan_originals or self.missing_originals
                    or self.missing_derivatives or self.duplicate_rows)

    def summary(self, limit: int = 50) -> dict[str, Any]:
        return {name: values[:limit] for name, values in self.__dict__.items()
                if isinstance(values, list)}


def reconcile(store: Any, arrivals: pl.DataFrame) -> Reconciliation:
    """Compare what the store holds with what the catalog says it holds."""
    result = Reconciliation()
    result.checked_contents = arrivals["content_id"].n_unique() if arrivals.height else 0
    ok = arrivals.filter(pl.col("status") == "ok") if arrivals.height else arrivals
    known = set(arrivals["original_key"].drop_nulls()) if arrivals.height else set()
    result.orphan_originals = [k for k in store.list("originals/") if k not in known]
    for row in ok.unique(["content_id", "original_key"]).iter_rows(named=True):
        if row.get("purged_at"):
            continue  # retention purged it on purpose (audit log, lifecycle state)
        if not row["original_key"] or not store.exists(row["original_key"]):
            result.missing_originals.append(f"{row['content_id']} ({row['source_name']})")
    alive = ok.filter(pl.col("purged_at").is_null()) if "purged_at" in ok.columns else ok
    wanted = {d["key"] for derivatives in alive["derivatives"].to_list()
              for d in derivatives or []}
    result.missing_derivatives = sorted(k for k in wanted if not store.exists(k))
    # Every fragment file, not the merged view: a batch with two live fragments or a fragment
    # with a repeated row would be counted twice by any reader that globs the folder.
    per_batch: dict[str, int] = {}
    for key in store.list(CATALOG_FRAGMENTS_PREFIX):
        batch = key[len(CATALOG_FRAGMENTS_PREFIX):].rpartition("/")[0]
        per_batch[batch] = per_batch.get(batch, 0) + 1
    result.duplicate_rows = [f"{batch}: {n} fragments" for batch, n in per_batch.items() if n > 1]
    if arrivals.height:
        dupes = arrivals.group_by("batch_key", "source_name").len().filter(pl.col("len") > 1)
        result.duplicate_rows += [f"{r['batch_key']}/{r['source_name']}"
                                  for r in dupes.iter_rows(named=True)]
    return result
