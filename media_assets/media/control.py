"""Operator switches kept in the store, so they work without a deploy or a daemon restart:
pausing ingestion (the inbox sensor stops forming batches; files wait in the inbox)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from media_assets.media.audit import append, audit_record

PAUSE_KEY = "control/ingestion_paused.json"


def pause_ingestion(store: Any, reason: str, actor: str, now: datetime,
                    run_id: str | None = None) -> dict[str, Any]:
    state = {"paused_at": now.isoformat(), "reason": reason, "actor": actor}
    store.put_bytes(PAUSE_KEY, json.dumps(state, sort_keys=True).encode())
    append(store, [audit_record("pause_ingestion", "-", reason=reason, actor=actor,
                                run_id=run_id, now=now)])
    return state


def resume_ingestion(store: Any, actor: str, now: datetime, run_id: str | None = None) -> bool:
    """Resume; False when ingestion was not paused."""
    if not store.exists(PAUSE_KEY):
        return False
    store.delete(PAUSE_KEY)
    append(store, [audit_record("resume_ingestion", "-", actor=actor, run_id=run_id,
                                now=now)])
    return True


def ingestion_paused(store: Any) -> dict[str, Any] | None:
    return json.loads(store.read_bytes(PAUSE_KEY)) if store.exists(PAUSE_KEY) else None
