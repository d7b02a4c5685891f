"""The inbox sensor's two pure steps, each alone: scan (an Inbox in, typed candidates out,
within the tick's budget) and plan (candidates, open batches, cursor, policy, breakers and
the time in; batches, manifests, launches and the next cursor out)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from media_assets.core.policy import Batching, Policy
from media_assets.core.store import InboxEntry
from media_assets.operations.batching import Candidate
from media_assets.operations.breaker import BreakerState
from media_assets.operations.inbox_tick import (
    HeldFolder,
    OpenBatch,
    Scan,
    fit_to_space,
    inbox_after,
    plan_tick,
    scan_inbox,
)
from media_assets.operations.inbox_watch import WATCH_MAX_FILES, wait_for_arrival
from media_assets.records.manifest import BULK, UPLOAD, new_manifest

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64


class FakeInbox:
    """An in-memory inbox: what a listing shows, each file's bytes, and every read made."""

    def __init__(self, files: dict[str, bytes], age: float = 60.0,
                 special: dict[str, str] | None = None, resume_after: str = "") -> None:
        self.files = files
        self.mtime = {name: NOW.timestamp() - age for name in files}
        self.special = special or {}
        self.resume_after = ""
        self.next_window = resume_after
        self.reads: list[tuple[str, int]] = []
        self.failing: dict[str, OSError] = {}
        self.complete: set[str] = set()  # renamed into place: no settle time

    def scan(self, after: str = "", report: Callable[[str, str], None] | None = None
             ) -> Iterator[InboxEntry]:
        for name, why in self.special.items():
            if report is not None:
                report(name, why)
        for name in sorted(self.files):
            if name > after:
                yield InboxEntry(name, len(self.files[name]), self.mtime[name],
                                 complete=name in self.complete)
        self.resume_after = self.next_window

    def list_entries(self) -> Iterator[InboxEntry]:
        return self.scan()

    def read_header(self, name: str, size: int) -> bytes:
        self.reads.append((name, size))
        if name in self.failing:
            raise self.failing[name]
        return self.files[name][:size]

    def read_range(self, name: str, offset: int, size: int) -> bytes:
        return self.files[name][offset:offset + size]


def scan(inbox: FakeInbox, batching: Batching | None = None, **options) -> Scan:
    return scan_inbox(inbox, batching or Batching(), now=NOW, **options)


# scan


def test_scan_turns_settled_files_into_typed_candidates_with_lane_and_work(jpeg_header):
    inbox = FakeInbox({"a.jpg": jpeg_header, "clip.jpg": MP4, "notes.bin": b"plain text"})
    found = scan(inbox)
    assert [(c.name, c.lane, c.size) for c in found.candidates] == [
        ("a.jpg", "image", len(jpeg_header)), ("clip.jpg", "av", len(MP4)),
        ("notes.bin", "image", 10)]
    assert all(isinstance(c, Candidate) and 0 < c.seconds < 1 for c in found.candidates)
    assert inbox.reads == [(name, 65536) for name in ("a.jpg", "clip.jpg", "notes.bin")]


def test_scan_reads_nothing_of_claimed_young_or_held_files(jpeg_header):
    inbox = FakeInbox({"claimed.jpg": jpeg_header, "young.jpg": jpeg_header,
                       "costly/x.jpg": jpeg_header, "costly/y.jpg": jpeg_header,
                       "ok.jpg": jpeg_header})
    inbox.mtime["young.jpg"] = NOW.timestamp() - 0.5
    found = scan(inbox, claimed={"claimed.jpg"}, held_folders={"costly": "over 5.00 USD"})
    assert [c.name for c in found.candidates] == ["ok.jpg"]
    assert inbox.reads == [("ok.jpg", 65536)]
    assert (found.claimed, found.unsettled) == (1, 1)
    assert found.held == (HeldFolder("costly", "over 5.00 USD", 2),)


def test_a_young_object_known_complete_is_taken_at_once_a_young_file_waits(jpeg_header):
    inbox = FakeInbox({"object.jpg": jpeg_header, "written.jpg": jpeg_header}, age=0.1)
    inbox.complete.add("object.jpg")  # e.g. on S3
    found = scan(inbox)
    assert [c.name for c in found.candidates] == ["object.jpg"]
    assert found.unsettled == 1


def test_scan_reports_what_it_cannot_read_and_goes_on(jpeg_header):
    inbox = FakeInbox({"locked.jpg": jpeg_header, "gone.jpg": jpeg_header,
                       "caf\udce9.jpg": jpeg_header, "flaky.jpg": jpeg_header,
                       "good.jpg": jpeg_header},
                      special={"pipe.jpg": "FIFO (never opened)"})
    inbox.failing = {"locked.jpg": PermissionError(13, "Permission denied"),
                     "gone.jpg": FileNotFoundError(2, "No such file")}
    flaky = (len(jpeg_header), inbox.mtime["flaky.jpg"])
    found = scan(inbox, unreadable_before={"flaky.jpg": flaky})
    assert [c.name for c in found.candidates] == ["good.jpg"]
    assert sorted(found.unreadable) == [
        "caf\\xe9.jpg: the file name is not UTF-8, rename it",
        "flaky.jpg: could not be read by its last batch",
        "locked.jpg: Permission denied"]
    assert found.special == ("pipe.jpg: FIFO (never opened)",)
    changed = scan(inbox, unreadable_before={"flaky.jpg": (1, 0.0)})  # rewritten since
    assert "flaky.jpg" in [c.name for c in changed.candidates]


def test_scan_stops_at_the_tick_file_budget_and_resumes_after_the_last_file_examined(
        jpeg_header):
    inbox = FakeInbox({f"{i}.jpg": jpeg_header for i in range(5)}, resume_after="zz")
    found = scan(inbox, Batching(tick_file_budget=2))
    assert [c.name for c in found.candidates] == ["0.jpg", "1.jpg"]
    assert found.budget_hit and found.next_after == "1.jpg"
    rest = scan(inbox, Batching(tick_file_budget=2), after=found.next_after)
    assert [c.name for c in rest.candidates] == ["2.jpg", "3.jpg"]


def test_scan_stops_at_the_tick_seconds_budget(jpeg_header):
    inbox = FakeInbox({f"{i}.jpg": jpeg_header for i in range(5)})
    ticks = iter(range(100))  # before each file the clock reads 0, 1, 2, 3... seconds
    found = scan(inbox, Batching(tick_seconds_budget=2.5), clock=lambda: next(ticks),
                 started=0)
    assert [c.name for c in found.candidates] == ["0.jpg", "1.jpg", "2.jpg"]
    assert found.budget_hit and found.next_after == "2.jpg"


def test_a_whole_window_scanned_resumes_where_the_inbox_says(jpeg_header):
    inbox = FakeInbox({"a.jpg": jpeg_header}, resume_after="a.jpg")
    assert scan(inbox).next_after == "a.jpg"  # e.g. S3: the last page's last name
    assert scan(FakeInbox({"a.jpg": jpeg_header})).next_after == ""  # wrapped: from the start


# plan


def candidate(name: str, age: float = 30.0, lane: str = "image", seconds: float = 0.01,
              why: str = "") -> Candidate:
    return Candidate(name, 1_000, NOW.timestamp() - age, lane, why, seconds)


def plan(candidates: list[Candidate], open_batches: list[OpenBatch] | None = None,
         cursor: str | None = None, policy: Policy | None = None, **scanned):
    return plan_tick(Scan(candidates=tuple(candidates), **scanned), open_batches or [], cursor,
                     policy or Policy(), NOW)


def test_plan_closes_batches_with_their_manifests_keys_and_runs():
    tick = plan([candidate("b.jpg"), candidate("a.jpg", age=40),
                 candidate("talk.mp4", lane="heavy", seconds=900.0, why="duration: 2400 s")])
    assert [(b.key, b.batch.lane) for b in tick.to_open] == [
        ("20261127T120000Z-0001", "image"), ("20261127T120000Z-0002", "heavy")]
    image = tick.to_open[0].manifest
    assert [s["inbox"] for s in image["sources"]] == ["a.jpg", "b.jpg"]
    assert (image["lane"], image["closed_because"], image["work"]) == ("image", "waited", UPLOAD)
    assert image["estimated_seconds"] == pytest.approx(0.02)
    heavy = tick.to_open[1].manifest
    assert heavy["sources"][0]["heavy_because"] == "duration: 2400 s"
    assert (heavy["closed_because"], heavy["estimated_seconds"]) == ("full", 900.0)
    assert tick.register == ("20261127T120000Z-0001", "20261127T120000Z-0002")
    assert [(r.key, r.lane, r.work) for r in tick.launches] == [
        ("20261127T120000Z-0001", "image", UPLOAD), ("20261127T120000Z-0002", "heavy", UPLOAD)]
    assert tick.bytes_to_open == 3_000
    assert "2 runs for 3 files (1 heavy, 1 image)" in tick.message
    assert "estimated work 0.02, 900 CPU-s" in tick.message


def test_plan_numbers_keys_after_the_days_batches_and_keeps_the_cursor_tiny():
    cursor = json.dumps({"batches": 7, "day": "2026-11-27", "partial": 3})
    tick = plan([candidate("a.jpg")], cursor=cursor, next_after="a.jpg")
    assert tick.to_open[0].key == "20261127T120000Z-0008"
    assert json.loads(tick.cursor) == {"batches": 8, "day": "2026-11-27", "inbox_after": "a.jpg",
                                       "partial": 4}
    assert inbox_after(tick.cursor) == "a.jpg"
    assert plan([], cursor=cursor).cursor == cursor  # nothing new: the same cursor


def test_plan_registers_orphans_and_asks_again_for_runs_that_never_came():
    def opened(key: str, registered: bool, age: float, work: str = UPLOAD) -> OpenBatch:
        return OpenBatch.from_manifest(
            new_manifest(key, "image", [], NOW - timedelta(seconds=age), work=work), registered)

    tick = plan([], [opened("orphan", False, 5), opened("stuck", True, 600, BULK),
                     opened("running", True, 30)])
    assert tick.to_open == () and tick.register == ("orphan",)
    assert [(r.key, r.work) for r in tick.launches] == [("orphan", UPLOAD), ("stuck", BULK)]
    assert "1 unregistered batches recovered" in tick.message


def test_plan_waits_for_company_and_says_why():
    tick = plan([candidate("young.jpg", age=0.5)], unsettled=2, claimed=3, budget_hit=True,
                unreadable=("x.jpg: Permission denied",),
                held=(HeldFolder("costly", "over budget", 4),))
    assert tick.to_open == () and tick.launches == ()
    assert tick.message == (
        "1 files waiting for their batch to fill; 2 files still being written; 3 files held "
        "by open batches; tick budget reached; the rest next tick; 1 files unreadable, left in "
        "the inbox (e.g. x.jpg: Permission denied); folder costly held until tomorrow (UTC): "
        "over budget; 4 files wait")


def test_plan_closes_by_the_policys_target_work():
    policy = Policy(batching=Batching(target_batch_seconds=1.0))
    tick = plan([candidate(f"{i}.jpg", seconds=0.3) for i in range(8)], policy=policy)
    assert [len(b.batch.files) for b in tick.to_open] == [4, 4]  # 1.2 s each: reached
    assert [b.batch.closed_because for b in tick.to_open] == ["full", "full"]


def test_an_open_circuit_holds_its_lane_and_a_half_open_one_sends_one_probe():
    files = [candidate("a.jpg", age=50), candidate("b.jpg"), candidate("c.mp4", lane="av")]
    held = plan_tick(Scan(candidates=tuple(files)), [], None, Policy(), NOW,
                     {"image": BreakerState("open", "2026-11-27T11:58:00", "timeouts")})
    assert [b.batch.lane for b in held.to_open] == ["av"]
    assert "lane image: circuit open since 2026-11-27T11:58:00 (timeouts); 2 files wait" in (
        held.message)
    half = BreakerState("half_open", "2026-11-27T11:58:00", "timeouts")
    probing = plan_tick(Scan(candidates=tuple(files)), [], None, Policy(), NOW,
                        {"image": half, "av": BreakerState()})
    image = [b for b in probing.to_open if b.batch.lane == "image"]
    assert [[c.name for c in b.batch.files] for b in image] == [["a.jpg"]]  # the oldest
    assert image[0].probe == half
    assert "lane image: circuit half-open, probing with a.jpg" in probing.message
    already = replace(half, probe_batch="20261127T115900Z-0001")  # a probe is under way
    waiting = plan_tick(Scan(candidates=tuple(files)), [], None, Policy(), NOW,
                        {"image": already})
    assert [b.batch.lane for b in waiting.to_open] == ["av"]


def test_plan_is_pure_the_same_inputs_give_the_same_plan():
    files = [candidate(f"{i}.jpg", age=10 + i) for i in range(5)]
    assert plan(files) == plan(files)


# --- the disk guard fits the work to the space ---------------------------------------------

def test_the_disk_guard_cuts_a_batch_to_the_files_that_fit():
    limits = Policy().limits
    files = [candidate(f"{i}.jpg", age=30 + i) for i in range(5)]  # 1,000 bytes each
    tick = plan(files)
    per_file = int(1_000 * limits.output_factor)
    free = limits.min_free_bytes + 2 * per_file + per_file // 2  # room for two files

    fitted, guard = fit_to_space(tick, free, limits, NOW)

    [batch] = fitted.to_open
    assert [s["inbox"] for s in batch.manifest["sources"]] == ["4.jpg", "3.jpg"]  # oldest
    assert batch.manifest["closed_because"] == "disk_space"
    assert fitted.register == (batch.key,) and [r.key for r in fitted.launches] == [batch.key]
    assert guard is not None and "3 files wait in the inbox" in guard
    assert guard in fitted.message


def test_the_disk_guard_holds_everything_only_when_not_one_file_fits():
    limits = Policy().limits
    tick = plan([candidate("a.jpg")])
    held, guard = fit_to_space(tick, limits.min_free_bytes + 10, limits, NOW)
    assert held.to_open == () and held.launches == () and held.register == ()
    assert guard is not None and "1 files wait in the inbox and need 2.93 KiB more" in guard
    assert guard in held.message
    roomy, none = fit_to_space(tick, 10 * 1024**3, limits, NOW)
    assert roomy == tick and none is None
    assert fit_to_space(tick, None, limits, NOW) == (tick, None)  # S3 does not fill up


# watching an idle inbox between ticks


class Clock:
    """Time that passes only when the watch sleeps; `arrive` lands files at given times."""

    def __init__(self, inbox: FakeInbox, arrivals: dict[float, Callable[[], None]]) -> None:
        self.now, self.inbox, self.arrivals = 0.0, inbox, dict(arrivals)

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for at in [t for t in self.arrivals if t <= self.now]:
            self.arrivals.pop(at)()

    def wall(self) -> float:
        return NOW.timestamp() + self.now


def watch(inbox: FakeInbox, clock: Clock, batching: Batching | None = None,
          claimed: frozenset[str] = frozenset(), seconds: float = 4.0) -> bool:
    return wait_for_arrival(inbox, batching or Batching(), claimed=claimed,
                            deadline=seconds, clock=lambda: clock.now, wall=clock.wall,
                            sleep=clock.sleep)


def test_the_watch_ends_as_soon_as_an_upload_completes(jpeg_header):
    inbox = FakeInbox({"waiting.jpg": jpeg_header})  # e.g. held back by the daily budget

    def upload() -> None:
        inbox.files["new.jpg"] = jpeg_header
        inbox.mtime["new.jpg"] = NOW.timestamp() + 1.0
        inbox.complete.add("new.jpg")

    clock = Clock(inbox, {1.0: upload})
    assert watch(inbox, clock) is True
    assert clock.now == pytest.approx(1.0, abs=0.21)


def test_the_watch_waits_for_a_file_being_written_to_settle(jpeg_header):
    inbox = FakeInbox({"growing.jpg": jpeg_header}, age=0.5)
    clock = Clock(inbox, {})
    assert watch(inbox, clock, Batching(settle_seconds=2.0)) is True
    assert clock.now == pytest.approx(1.5, abs=0.21)


def test_the_watch_gives_up_at_its_deadline_and_ignores_claimed_files(jpeg_header):
    inbox = FakeInbox({"claimed.jpg": jpeg_header}, age=0.5)
    clock = Clock(inbox, {})
    assert watch(inbox, clock, claimed=frozenset({"claimed.jpg"})) is False
    assert clock.now == pytest.approx(4.0, abs=0.21)


def test_a_busy_inbox_is_not_watched(jpeg_header):
    inbox = FakeInbox({f"{i}.jpg": jpeg_header for i in range(WATCH_MAX_FILES + 1)})
    clock = Clock(inbox, {})
    assert watch(inbox, clock) is False
    assert clock.now == 0.0


def test_a_flood_landing_while_watched_ends_the_watch(jpeg_header):
    inbox = FakeInbox({})

    def flood() -> None:
        for i in range(WATCH_MAX_FILES + 1):
            inbox.files[f"{i}.jpg"] = jpeg_header
            inbox.mtime[f"{i}.jpg"] = NOW.timestamp() - 60

    clock = Clock(inbox, {0.5: flood})
    assert watch(inbox, clock) is True
    assert clock.now == pytest.approx(0.5, abs=0.21)


def test_a_busy_inbox_is_not_polled_but_its_files_being_written_are_awaited(jpeg_header):
    inbox = FakeInbox({f"{i}.jpg": jpeg_header for i in range(WATCH_MAX_FILES + 1)})
    inbox.mtime["0.jpg"] = NOW.timestamp() - 0.5  # settles 1.5 s from now
    clock = Clock(inbox, {})
    assert watch(inbox, clock, Batching(settle_seconds=2.0)) is True
    assert clock.now == pytest.approx(1.55, abs=0.01)  # one sleep, no polling


def test_the_watch_wakes_when_a_waiting_file_may_close_its_batch(jpeg_header):
    inbox = FakeInbox({"waiting.jpg": jpeg_header}, age=1.2)  # settled, waiting to fill
    clock = Clock(inbox, {})
    batching = Batching(settle_seconds=1.0, max_wait_seconds=2.0)
    assert watch(inbox, clock, batching) is True
    assert clock.now == pytest.approx(0.8, abs=0.21)
