"""Reconcile the whole store against the catalog: orphans, missing files, duplicate rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from media_assets.media.catalog import content_view


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
    view = content_view(arrivals)
    result.checked_contents = view.height
    known = set(view["original_key"].drop_nulls()) if view.height else set()
    result.orphan_originals = [k for k in store.list("originals/") if k not in known]
    for row in view.filter(pl.col("status") == "ok").iter_rows(named=True):
        if not row["original_key"] or not store.exists(row["original_key"]):
            result.missing_originals.append(f"{row['content_id']} ({row['source_name']})")
        for derivative in row["derivatives"] or []:
            if not store.exists(derivative["key"]):
                result.missing_derivatives.append(derivative["key"])
    if arrivals.height:
        dupes = arrivals.group_by("batch_key", "source_name").len().filter(pl.col("len") > 1)
        result.duplicate_rows = [f"{r['batch_key']}/{r['source_name']}"
                                 for r in dupes.iter_rows(named=True)]
    return result
