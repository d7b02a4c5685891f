"""Operator switches and guards kept in the store, so they work without a deploy or a daemon
restart: pausing ingestion, and the disk guard that holds new batches while the store is
short of space (files wait in the inbox either way)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from media_assets.operations.alerts import Alert, Notifier, raise_alert
from media_assets.records.audit import append, audit_record

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


POLICY_PROBLEM_KEY = "control/policy/problem.json"
DISK_GUARD_KEY = "control/disk_guard.json"


def note_policy_problem(store: Any, problem: str | None, now: datetime,
                        notifier: Notifier | None = None) -> None:
    """Alert once when the policy file turns invalid (and again only if its problem changes),
    once when it is valid again."""
    noted = json.loads(store.read_bytes(POLICY_PROBLEM_KEY)) \
        if store.exists(POLICY_PROBLEM_KEY) else None
    if problem and (noted is None or noted["reason"] != problem):
        store.put_bytes(POLICY_PROBLEM_KEY, json.dumps({"since": now.isoformat(),
                                                        "reason": problem}).encode())
        raise_alert(store, Alert("policy", f"invalid policy file, ticks use the last valid "
                                           f"version: {problem}"),
                    notifier, actor="inbox_sensor", now=now)
    elif not problem and noted is not None:
        store.delete(POLICY_PROBLEM_KEY)
        raise_alert(store, Alert("policy", "the policy file is valid again",
                                 severity="resolved"), notifier, actor="inbox_sensor", now=now)


def note_disk_guard(store: Any, problem: str | None, now: datetime,
                    notifier: Notifier | None = None) -> None:
    """Alert once when the guard engages and once when it clears (not on every tick)."""
    engaged = store.exists(DISK_GUARD_KEY)
    if problem and not engaged:
        store.put_bytes(DISK_GUARD_KEY, json.dumps({"since": now.isoformat(),
                                                    "reason": problem}).encode())
        raise_alert(store, Alert("disk_guard", problem), notifier, actor="inbox_sensor",
                    now=now)
    elif not problem and engaged:
        store.delete(DISK_GUARD_KEY)
        raise_alert(store, Alert("disk_guard", "the store has room again; batches resume",
                                 severity="resolved"), notifier, actor="inbox_sensor", now=now)


BUDGET_STATE_PREFIX = "control/budgets/"
BUDGET_PAUSE_KEY = "control/budget_paused.json"
LEVELS = ("ok", "warning", "over")


def note_budgets(store: Any, day: str, statuses: list[Any], pause: bool,
                 notifier: Notifier | None, now: datetime,
                 run_id: str | None = None) -> list[str]:
    """Alert once per day and budget for each level reached (warning at `warn_at`, over at
    100 %); with `pause`, folders over budget take no new files for the rest of the day
    (lifted as soon as an evaluation finds them under budget, e.g. after a raise). Returns
    the alerts raised."""
    key = f"{BUDGET_STATE_PREFIX}date={day}.json"
    alerted = json.loads(store.read_bytes(key)) if store.exists(key) else {}
    raised = []
    for status in statuses:
        if LEVELS.index(status.level) <= LEVELS.index(alerted.get(status.scope, "ok")):
            continue
        alerted[status.scope] = status.level
        severity = "warning" if status.level == "warning" else "error"
        raise_alert(store, Alert(f"budget:{status.scope or '(root)'}", status.describe,
                                 severity=severity, details={"day": day}),
                    notifier, actor="usage", run_id=run_id, now=now)
        raised.append(status.describe)
    store.put_bytes(key, json.dumps(alerted, sort_keys=True).encode())
    held = {s.scope: s.describe for s in statuses
            if pause and s.level == "over" and s.scope != "all"}
    if held:
        store.put_bytes(BUDGET_PAUSE_KEY, json.dumps({"day": day, "folders": held},
                                                     sort_keys=True).encode())
    elif store.exists(BUDGET_PAUSE_KEY):
        store.delete(BUDGET_PAUSE_KEY)
    return raised


def budget_paused_folders(store: Any, today: str) -> dict[str, str]:
    """Folder -> why, for the folders held over budget today (a new day lifts every hold)."""
    if not store.exists(BUDGET_PAUSE_KEY):
        return {}
    state = json.loads(store.read_bytes(BUDGET_PAUSE_KEY))
    return state["folders"] if state["day"] == today else {}
