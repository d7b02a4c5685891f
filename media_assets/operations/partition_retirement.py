"""Which batch partitions to retire: Dagster's UI slows well before its advised 100,000
partitions per asset, and batch partitions would grow forever. A batch leaves Dagster once it
is old enough, its day's archive verifies and holds every one of its contents, and nothing
is still working on it (no live run, no open manifest, no pending rebuild). Its files, rows
and archive stay; lookups read the catalog and the archive, and a rebuild registers the
partition again. Pure: the Dagster module gathers the facts and deletes the partitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class BatchFacts:
    """What retirement looks at for one registered batch partition."""

    key: str
    day: date  # the day its key carries (its archive day)
    content_ids: frozenset[str]  # the contents its catalog rows name
    live_runs: int = 0
    open: bool = False  # its manifest is still open: the batch's run has not closed it
    pending_rebuild: bool = False


@dataclass(frozen=True)
class ArchivedDay:
    problems: tuple[str, ...]  # what verifying the day against its manifest found
    content_ids: frozenset[str]


@dataclass(frozen=True)
class Retirement:
    key: str
    retire: bool
    why: str


def plan_retirement(batches: Sequence[BatchFacts], archive: Mapping[date, ArchivedDay | None],
                    today: date, after_days: float | None) -> list[Retirement]:
    """For each batch: retire it, or why not (yet)."""
    plans = []
    for batch in batches:
        age = (today - batch.day).days
        if after_days is None:
            why = "retirement is off (retention.retire_partitions_after_days: null)"
        elif age < after_days:
            why = f"{age} days old (retired after {after_days:g})"
        elif batch.live_runs:
            why = f"{batch.live_runs} runs of it are live"
        elif batch.open:
            why = "its manifest is still open (its run has not finished it)"
        elif batch.pending_rebuild:
            why = "a rebuild of it is pending"
        elif (archived := archive.get(batch.day)) is None:
            why = f"its day {batch.day} is not archived"
        elif archived.problems:
            why = f"its day's archive does not verify: {archived.problems[0]}"
        elif missing := batch.content_ids - archived.content_ids:
            why = f"{len(missing)} of its contents are not in the archive of {batch.day} yet"
        else:
            plans.append(Retirement(batch.key, True, f"{age} days old, archived and verified"))
            continue
        plans.append(Retirement(batch.key, False, why))
    return plans
