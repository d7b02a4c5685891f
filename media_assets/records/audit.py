"""The audit log: every quarantine, tier move, purge, release and erasure, appended as JSON
lines under `audit/date=YYYY-MM-DD/`. Each append is a new object written put-if-absent, so
no record is ever rewritten (on local disk and on S3 alike). Pure, no Dagster."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import polars as pl

AUDIT_PREFIX = "audit/"
FIELDS = ("time", "action", "content_id", "from", "to", "reason", "run_id", "actor")


def audit_record(action: str, content_id: str, *, source: str | None = None,
                 target: str | None = None, reason: str | None = None,
                 run_id: str | None = None, actor: str = "media_assets",
                 now: datetime | None = None) -> dict[str, Any]:
    return {"time": (now or datetime.now(UTC)).isoformat(), "action": action,
            "content_id": content_id, "from": source, "to": target, "reason": reason,
            "run_id": run_id, "actor": actor}


def append(store: Any, records: Iterable[dict[str, Any]]) -> str | None:
    """Append records as one new object; returns its key (None when there was nothing)."""
    records = list(records)
    if not records:
        return None
    when = datetime.fromisoformat(records[0]["time"]).astimezone(UTC)
    key = (f"{AUDIT_PREFIX}date={when.date().isoformat()}/"
           f"{when.strftime('%H%M%S%f')}-{uuid.uuid4().hex[:12]}.jsonl")
    body = "".join(json.dumps({f: r.get(f) for f in FIELDS}, sort_keys=True) + "\n"
                   for r in records)
    if not store.put_bytes_if_absent(key, body.encode()):
        raise RuntimeError(f"audit object {key} already exists")  # never overwrite
    return key


def read_audit(store: Any, day: str | None = None) -> pl.DataFrame:
    """Every audit record (of one day, if given), oldest first."""
    prefix = f"{AUDIT_PREFIX}date={day}/" if day else AUDIT_PREFIX
    rows = [json.loads(line) for key in store.list(prefix) if key.endswith(".jsonl")
            for line in store.read_bytes(key).decode().splitlines() if line]
    schema = {f: pl.String for f in FIELDS}
    return pl.DataFrame(rows, schema=schema).sort("time") if rows else pl.DataFrame(
        schema=schema)
