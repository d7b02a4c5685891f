"""Freshness as a file sees it: how long the oldest file that arrived but is not catalogued
yet has been waiting (in the inbox, or in a batch whose run has not finished). Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Pending:
    waiting: int  # files arrived and not catalogued
    oldest_name: str | None
    oldest_age_seconds: float


def oldest_pending(inbox: Iterable[Any], open_manifests: list[dict[str, Any]],
                   now: datetime) -> Pending:
    """`inbox`: entries with name and mtime; open batches hold files until their run ends."""
    arrivals: dict[str, float] = {}
    for manifest in open_manifests:
        for source in manifest["sources"]:
            if "inbox" in source:
                arrivals[source["inbox"]] = source.get("mtime") or now.timestamp()
    for entry in inbox:
        arrivals.setdefault(entry.name, entry.mtime)
    if not arrivals:
        return Pending(0, None, 0.0)
    name, mtime = min(arrivals.items(), key=lambda item: item[1])
    return Pending(len(arrivals), name, max(0.0, now.timestamp() - mtime))
