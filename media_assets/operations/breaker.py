"""A circuit breaker per lane: when files fail for non-deterministic reasons (time limits,
crashed workers, memory, storage), the sensor stops launching that lane's batches, probes
again with a single file after a cool-down, and closes once the probe goes through. A corrupt
file is deterministic: it is quarantined and never trips the breaker. State lives in the
store, so it survives a daemon restart. Pure, no Dagster."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from media_assets.core.policy import BreakerRules  # the policy's `breaker` section

# Failures that say something about the machine or its dependencies, not about the file.
NONDETERMINISTIC = frozenset({"timeout", "worker_crashed", "out_of_memory", "intake_error",
                              "fixity_mismatch", "error", "retried_alone"})


@dataclass(frozen=True)
class BreakerState:
    status: str = "closed"  # closed | open | half_open
    since: str = ""
    reason: str = ""
    probe_batch: str = ""


def breaker_reason(status: str, reason: str | None, retried: str | None) -> str | None:
    """What one file's outcome tells the breaker (None: nothing went wrong).

    A file whose worker died and that then went through alone is ok, but the death was the
    machine's doing: it counts as a non-deterministic failure (`retried_alone`). A file that
    failed alone again does it by itself, like a corrupt file: deterministic, it never trips
    the breaker (`<reason> (alone)`)."""
    if status == "ok":
        return "retried_alone" if retried else None
    return f"{reason} (alone)" if retried else reason


def outcomes_key(lane: str) -> str:
    return f"control/breaker/{lane}-outcomes.json"


def state_key(lane: str) -> str:
    return f"control/breaker/{lane}.json"


def record_outcomes(store: Any, lane: str, batch_key: str, reasons: list[str | None],
                    keep: int = 100) -> None:
    """Append a batch's per-file outcomes (None = ok, else the quarantine reason)."""
    key = outcomes_key(lane)
    recent = json.loads(store.read_bytes(key)) if store.exists(key) else []
    recent = [o for o in recent if o["batch"] != batch_key]  # a rerun replaces its batch
    recent += [{"batch": batch_key, "failed": reason in NONDETERMINISTIC, "reason": reason}
               for reason in reasons]
    store.put_bytes(key, json.dumps(recent[-keep:]).encode())


def load_state(store: Any, lane: str) -> BreakerState:
    key = state_key(lane)
    return BreakerState(**json.loads(store.read_bytes(key))) if store.exists(key) else \
        BreakerState()


def trips(outcomes: list[dict[str, Any]], rules: BreakerRules) -> str | None:
    """Why the recent outcomes open the breaker (None when they do not)."""
    window = outcomes[-rules.window:]
    failed = sum(o["failed"] for o in window)
    streak = 0
    for outcome in reversed(window):
        if not outcome["failed"]:
            break
        streak += 1
    if streak >= rules.consecutive:
        return f"{streak} files in a row failed ({window[-1]['reason']})"
    if len(window) >= rules.min_files and failed / len(window) >= rules.failure_ratio:
        return f"{failed} of the last {len(window)} files failed (e.g. {_example(window)})"
    return None


def _example(window: list[dict[str, Any]]) -> str:
    return next(o["reason"] for o in reversed(window) if o["failed"])


def next_state(store: Any, lane: str, rules: BreakerRules, now: datetime,
               batch_done: Any) -> tuple[BreakerState, bool]:
    """(the lane's state now, whether it changed). `batch_done(key)` says whether a probe
    batch has finished (its catalog rows written)."""
    state = load_state(store, lane)
    key = outcomes_key(lane)
    outcomes = json.loads(store.read_bytes(key)) if store.exists(key) else []
    if state.status == "closed":
        reason = trips(outcomes, rules)
        new = BreakerState("open", now.isoformat(), reason) if reason else state
    elif state.status == "open":
        cooled = now - datetime.fromisoformat(state.since) >= timedelta(
            seconds=rules.cooldown_seconds)
        new = BreakerState("half_open", now.isoformat(), state.reason) if cooled else state
    else:  # half_open: waiting for the probe batch (set by the sensor when it launches it)
        if not state.probe_batch or not batch_done(state.probe_batch):
            new = state
        else:
            probe = [o for o in outcomes if o["batch"] == state.probe_batch]
            if any(o["failed"] for o in probe):
                new = BreakerState("open", now.isoformat(),
                                   f"probe failed ({probe[-1]['reason']})")
            else:  # recovered: judge only what happens from now on
                new = BreakerState()
                store.put_bytes(key, json.dumps(probe).encode())
    if new != state:
        store.put_bytes(state_key(lane), json.dumps(asdict(new)).encode())
    return new, new != state


def set_probe(store: Any, lane: str, state: BreakerState, batch_key: str) -> None:
    probe = BreakerState(state.status, state.since, state.reason, batch_key)
    store.put_bytes(state_key(lane), json.dumps(asdict(probe)).encode())
