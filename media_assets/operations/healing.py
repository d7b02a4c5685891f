"""Batches heal: a batch whose last run failed or died runs again by itself once the cause has
cleared, with backoff, up to the policy's `healing.max_attempts`, then waits for a person
with one alert. Pure, no Dagster: the inbox sensor reads each open batch's runs into
`RunFacts` and carries out what `heal` decides.

Why a new run key per attempt: Dagster skips a run request whose run key it has seen (in
1.13 the tick is then SKIPPED with an empty message), so asking again with the batch key does
nothing once the batch's first run has failed. Attempt n asks with `<batch>/heal-<n>` on the
same partition; n comes from the runs themselves (their `media_assets/heal_attempt` tag), so
a daemon restart loses nothing. The healer steps in only once Dagster's own run retries are
spent (a failed run tagged `dagster/will_retry=true` gets its retry from the daemon) and never
while a run of the batch is live, so one partition never has two live runs.

A dead run's decode workers die with it (PR_SET_PDEATHSIG, `codec/worker.py`), so a re-run never
competes with the orphans of the run it replaces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from media_assets.core.policy import HealingRules

HEAL_ATTEMPT_TAG = "media_assets/heal_attempt"
# Seconds an open batch may wait for its first run before it is asked for again: the run
# request of the tick that opened it may still be on its way to the daemon.
RELAUNCH_AFTER = 120
LIVE = "live"
FAILED = "failed"
SUCCEEDED = "succeeded"


@dataclass(frozen=True)
class RunFacts:
    """What the healer needs to know about one run of a batch."""

    run_id: str
    state: str  # LIVE, FAILED (failure or cancellation) or SUCCEEDED
    ended_at: datetime | None
    will_retry: bool  # Dagster's run retries will start another run
    heal_attempt: int  # 0: the sensor's first run (or one started by hand)
    error: str = ""


@dataclass(frozen=True)
class Heal:
    """What to do about one open batch whose run is not live."""

    batch_key: str
    action: str  # "run" | "wait" | "give_up" | "none"
    attempt: int = 0
    why: str = ""

    @property
    def run_key(self) -> str:
        return heal_run_key(self.batch_key, self.attempt)


def heal_run_key(batch_key: str, attempt: int) -> str:
    """The run key of a batch's attempt (0: its first run, keyed by the batch itself)."""
    return batch_key if attempt == 0 else f"{batch_key}/heal-{attempt}"


def backoff_seconds(attempt: int, rules: HealingRules) -> float:
    """How long after attempt `attempt - 1` failed attempt `attempt` may start."""
    return min(rules.backoff_seconds * 2 ** max(0, attempt - 1), rules.max_backoff_seconds)


def heal(batch_key: str, opened_at: datetime, runs: Sequence[RunFacts], rules: HealingRules,
         now: datetime, blocked_by: str | None = None) -> Heal:
    """Decide for one open batch: run it again (with its attempt number), wait (and why), or
    give up (the attempts are spent: a person must look). `blocked_by` names a cause that has
    not cleared (breaker open, disk guard, ...): no attempt is spent while it holds.

    With no run at all, the batch's first run is asked for (attempt 0): the daemon stopped
    between registering the partition and launching, or the run was deleted."""
    if any(r.state == LIVE for r in runs):
        return Heal(batch_key, "none")
    if not runs:
        if (now - opened_at).total_seconds() <= RELAUNCH_AFTER:
            return Heal(batch_key, "none")
        return Heal(batch_key, "run", 0, "its run was never started")
    last = max(runs, key=lambda r: (r.ended_at or datetime.min.replace(tzinfo=now.tzinfo),
                                    r.heal_attempt))
    if last.state == SUCCEEDED:
        return Heal(batch_key, "none")
    if last.will_retry:
        return Heal(batch_key, "wait", last.heal_attempt,
                    f"run {last.run_id[:8]} failed; Dagster's run retry comes first")
    attempt = max(r.heal_attempt for r in runs) + 1
    failed = sum(r.state == FAILED for r in runs)
    cause = f"run {last.run_id[:8]} failed" + (f" ({last.error[:160]})" if last.error else "")
    if attempt > rules.max_attempts:
        return Heal(batch_key, "give_up", attempt - 1,
                    f"{failed} runs failed, {rules.max_attempts} re-runs spent; {cause}: "
                    "fix the cause, then re-execute the batch from the UI")
    if blocked_by:
        return Heal(batch_key, "wait", attempt, f"{cause}; re-run {attempt} waits: "
                                                f"{blocked_by}")
    ready_at = (last.ended_at or now) + timedelta(seconds=backoff_seconds(attempt, rules))
    if now < ready_at:
        return Heal(batch_key, "wait", attempt,
                    f"{cause}; re-run {attempt}/{rules.max_attempts} in "
                    f"{(ready_at - now).total_seconds():.0f} s")
    return Heal(batch_key, "run", attempt,
                f"{cause}; re-run {attempt}/{rules.max_attempts}")
