"""Which batch partitions retire: old enough, archived, verified, holding every content of
the batch, and nothing still working on it; every other one says why not."""

from datetime import date

from media_assets.operations.partition_retirement import (
    ArchivedDay,
    BatchFacts,
    plan_retirement,
)

DAY, TODAY = date(2026, 8, 1), date(2026, 12, 1)
GOOD = ArchivedDay((), frozenset({"a", "b"}))


def verdict(batch: BatchFacts, archive=None, after: float | None = 90):
    [plan] = plan_retirement([batch], {DAY: GOOD} if archive is None else archive, TODAY, after)
    return plan.retire, plan.why


def batch(**changes) -> BatchFacts:
    return BatchFacts(**{"key": "20260801T100000Z-0001", "day": DAY,
                         "content_ids": frozenset({"a", "b"}), **changes})


def test_an_old_archived_verified_idle_batch_retires():
    assert verdict(batch()) == (True, "122 days old, archived and verified")


def test_every_other_batch_says_why_it_stays():
    assert verdict(batch(day=date(2026, 11, 20)))[1] == "11 days old (retired after 90)"
    assert verdict(batch(live_runs=1))[1] == "1 runs of it are live"
    assert verdict(batch(open=True))[1].startswith("its manifest is still open")
    assert verdict(batch(pending_rebuild=True))[1] == "a rebuild of it is pending"
    assert verdict(batch(), archive={})[1] == "its day 2026-08-01 is not archived"
    broken = ArchivedDay(("part-1.parquet: sha256 mismatch",), GOOD.content_ids)
    assert verdict(batch(), archive={DAY: broken})[1] == (
        "its day's archive does not verify: part-1.parquet: sha256 mismatch")
    assert verdict(batch(content_ids=frozenset({"a", "b", "c"})))[1] == (
        "1 of its contents are not in the archive of 2026-08-01 yet")
    assert verdict(batch(), after=None)[0] is False
