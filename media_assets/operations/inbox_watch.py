"""Between Dagster's sensor ticks: an idle inbox tick watches the inbox and returns as soon as
there is something new to plan (`defs/sensors.py` then plans again). Touches only the `Inbox`
it is given; the clocks and the sleep are parameters, so it is tested without waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Set

from media_assets.core.policy import Batching
from media_assets.core.store import Inbox

WATCH_MAX_FILES = 100  # a local listing costs ~50 µs a file: 5 ms a poll at most


def wait_for_arrival(inbox: Inbox, batching: Batching, *, claimed: Set[str],
                     deadline: float, clock: Callable[[], float] = time.monotonic,
                     wall: Callable[[], float] = time.time,
                     sleep: Callable[[float], None] = time.sleep) -> bool:
    """Watch an idle inbox until a file becomes ready that was not ready when the watch
    began (an upload completed, or a file being written settled); False at `deadline`.

    Dagster's sensor daemon evaluates a sensor at most every 5 s, so without this a lone
    upload waits up to a whole loop for the next tick: an idle tick keeps listing the inbox
    every `watch_poll_seconds` for up to `watch_seconds` and plans again as soon as something
    arrives, or when a file that waits for its batch to fill reaches `max_wait_seconds`. An
    inbox holding more than `WATCH_MAX_FILES` files (waiting, or claimed by running batches: a
    busy system) is not polled, since five listings a second would cost more CPU than they
    save time; the watch only sleeps until the next such moment. One that grows past it while
    watched has just received a flood: plan it at once.
    """
    def look() -> tuple[set[tuple[str, int, float]], float | None, bool]:
        """(ready files, the next moment a plan may change, too many files to poll): a file
        being written settles, or a settled one reaches `max_wait_seconds` (its batch may
        close then)."""
        now, seen, due, count = wall(), set(), None, 0
        for entry in inbox.list_entries():
            count += 1
            if entry.name in claimed:
                continue
            settled = entry.complete or now - entry.mtime >= batching.settle_seconds
            if settled:
                seen.add((entry.name, entry.size, entry.mtime))
            at = entry.mtime + (batching.max_wait_seconds if settled
                                else batching.settle_seconds)
            if at > now:
                due = at if due is None else min(due, at)
        return seen, due, count > WATCH_MAX_FILES

    before, due, busy = look()
    while True:
        if busy:
            wait = None if due is None else max(due - wall(), 0.0) + 0.05
            if wait is None or clock() + wait >= deadline:
                return False
            sleep(wait)
            return True
        if clock() + batching.watch_poll_seconds >= deadline:
            return False
        sleep(batching.watch_poll_seconds)
        was_due = due
        ready, due, busy = look()
        if busy or ready - before or (was_due is not None and wall() >= was_due):
            return True  # a flood landed, a file is ready, or a waiting batch may close
