"""Batches heal: a batch whose last run failed runs again by itself, with backoff and a new
run key per attempt, once Dagster's own retries are spent and the cause has cleared."""

from datetime import UTC, datetime, timedelta

from media_assets.core.policy import HealingRules
from media_assets.operations.healing import (
    FAILED,
    LIVE,
    SUCCEEDED,
    RunFacts,
    backoff_seconds,
    heal,
    heal_run_key,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OPENED = NOW - timedelta(minutes=10)
RULES = HealingRules(max_attempts=3, backoff_seconds=30, max_backoff_seconds=100)


def run(state: str, ended_ago: float | None = 60.0, attempt: int = 0, will_retry: bool = False,
        run_id: str = "abcdef0123") -> RunFacts:
    ended = NOW - timedelta(seconds=ended_ago) if ended_ago is not None else None
    return RunFacts(run_id, state, ended, will_retry, attempt)


def test_a_failed_batch_runs_again_with_the_next_attempts_run_key():
    decision = heal("B", OPENED, [run(FAILED)], RULES, NOW)
    assert (decision.action, decision.attempt, decision.run_key) == ("run", 1, "B/heal-1")
    assert "re-run 1/3" in decision.why
    again = heal("B", OPENED, [run(FAILED, 600), run(FAILED, 120, attempt=1)], RULES, NOW)
    assert (again.action, again.run_key) == ("run", "B/heal-2")


def test_nothing_happens_while_a_run_of_the_batch_is_live_or_after_it_succeeded():
    assert heal("B", OPENED, [run(FAILED), run(LIVE, None, attempt=1)], RULES, NOW).action \
        == "none"
    assert heal("B", OPENED, [run(SUCCEEDED)], RULES, NOW).action == "none"


def test_dagsters_own_run_retry_comes_first():
    decision = heal("B", OPENED, [run(FAILED, will_retry=True)], RULES, NOW)
    assert decision.action == "wait" and "Dagster's run retry comes first" in decision.why


def test_re_runs_back_off_exponentially_up_to_a_cap():
    assert [backoff_seconds(n, RULES) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]
    waiting = heal("B", OPENED, [run(FAILED, ended_ago=10)], RULES, NOW)
    assert (waiting.action, waiting.attempt) == ("wait", 1)
    assert "re-run 1/3 in 20 s" in waiting.why


def test_no_attempt_is_spent_while_the_cause_holds():
    decision = heal("B", OPENED, [run(FAILED)], RULES, NOW,
                    blocked_by="lane image's circuit is open")
    assert decision.action == "wait" and "circuit is open" in decision.why


def test_once_the_re_runs_are_spent_a_person_is_asked():
    runs = [run(FAILED, 900), *(run(FAILED, 600 - 100 * n, attempt=n) for n in (1, 2, 3))]
    decision = heal("B", OPENED, runs, RULES, NOW)
    assert decision.action == "give_up"
    assert "4 runs failed, 3 re-runs spent" in decision.why
    assert "re-execute the batch" in decision.why


def test_a_batch_whose_run_never_came_is_asked_for_once_it_had_time_to_come():
    assert heal("B", NOW - timedelta(seconds=30), [], RULES, NOW).action == "none"
    late = heal("B", OPENED, [], RULES, NOW)
    assert (late.action, late.run_key) == ("run", "B")
    assert heal_run_key("B", 0) == "B"
