"""Where a content came from and what made each of its derivatives: one answer for the
`lookup_file` job and the CLI's `lookup`. Pure, no Dagster."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from media_assets.records.manifest import load_spec


def provenance(store: Any, matches: pl.DataFrame, latest: dict[str, Any]) -> dict[str, Any]:
    """Where a content came from and what made each of its derivatives."""
    return {
        "content_id (SHA-256 of the original)": latest["content_id"],
        "source_names": sorted(set(matches["source_name"])),
        "batches": sorted(set(matches["batch_key"])),
        "run_id": latest["run_id"],
        "code_versions": json.loads(latest["code_versions"] or "{}"),
        "policy_version": latest["policy_version"],
        "original": latest["original_key"],
        "tier": original_state(store, latest["original_key"]),
        "derivatives": [{**d, "spec": load_spec(store, d["name"].removesuffix("_image"),
                                               d["spec_hash"])}
                        for d in latest["derivatives"] or []],
    }


def original_state(store: Any, key: str | None) -> str:
    """Where an original is: the hot or cold tier, or purged (retention) / never stored."""
    if not key:
        return "none (quarantined at intake)"
    return store.tier(key) or ("purged: the original is gone (retention); its derivatives "
                               "and row remain")
