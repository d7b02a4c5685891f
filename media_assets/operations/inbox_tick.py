"""One tick of the inbox sensor, as two pure steps the Dagster sensor wires together.

- `scan_inbox`: list and stat this tick's window of the inbox within the tick's budget of
  files and seconds, read each new file's header, sort it into a lane by the cheap probe and
  estimate its work: typed `Candidate`s, plus what was skipped and why. It touches nothing
  but the `Inbox` it is given.
- `plan_tick`: from the candidates, the open batches, the cursor, the policy, the lanes'
  breakers and the time, decide which batches close (lanes, manifests), which batches to
  register and launch, the tick's message and the next cursor. No I/O at all.

The sensor (`defs/sensors.py`) then opens what was planned: manifests and open markers are
written durably before the `SensorResult` registers and launches them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from media_assets.codec.untrusted import sanitize_name
from media_assets.core.policy import Batching, Limits, Policy
from media_assets.core.store import Inbox
from media_assets.operations.batching import (
    LANES,
    BudgetState,
    Candidate,
    OutputSizes,
    Plan,
    PlannedBatch,
    batch_key,
    classify_lane,
    estimate_seconds,
    plan_batches,
)
from media_assets.operations.breaker import BreakerState
from media_assets.operations.healing import Heal, RunFacts, heal, heal_run_key
from media_assets.operations.usage import source_folder
from media_assets.records.manifest import UPLOAD, new_manifest, work_of


@dataclass(frozen=True)
class HeldFolder:
    """An inbox folder over its daily cost budget: its files wait until tomorrow (UTC)."""

    folder: str
    why: str
    waiting: int


@dataclass(frozen=True)
class Scan:
    """What one tick saw in its window of the inbox."""

    candidates: tuple[Candidate, ...] = ()
    unsettled: int = 0  # still being written (younger than settle_seconds)
    claimed: int = 0  # inbox names held by open batches
    unreadable: tuple[str, ...] = ()  # "name: why", left in the inbox
    special: tuple[str, ...] = ()  # links, FIFOs, devices...: "name: why", never opened
    held: tuple[HeldFolder, ...] = ()
    budget_hit: bool = False  # the tick's file or seconds budget ended the scan
    next_after: str = ""  # the name the next tick's window starts after ("" = the beginning)


def scan_inbox(
    inbox: Inbox, batching: Batching, *, now: datetime, after: str = "",
    claimed: Set[str] = frozenset(),
    unreadable_before: Mapping[str, tuple[int, float]] | None = None,
    held_folders: Mapping[str, str] | None = None, outputs: OutputSizes | None = None,
    clock: Callable[[], float] = time.monotonic, started: float | None = None,
) -> Scan:
    """Examine the files of this tick's window after `after` (on S3 a few listing pages; a
    local folder is walked whole) until `tick_file_budget` files or `tick_seconds_budget`
    seconds since `started` (default: now), reading at most `header_bytes` of each.

    Skipped without a read: names held by open batches (`claimed`), files of folders over
    their cost budget (`held_folders`: folder -> why), unchanged files a batch could not read
    (`unreadable_before`: name -> (size, mtime)), files younger than `settle_seconds` unless
    their writer is known to be done (`InboxEntry.complete`).
    `outputs` (what the policy renders; default: the default policy's) feeds each file's work
    estimate."""
    unreadable_before = unreadable_before or {}
    held_folders = held_folders or {}
    outputs = outputs or OutputSizes()
    started = clock() if started is None else started
    candidates: list[Candidate] = []
    unreadable: list[str] = []
    special: list[str] = []
    held: Counter[str] = Counter()
    unsettled = examined = 0
    budget_hit = False
    last_seen = after

    def report(name: str, why: str) -> None:
        special.append(f"{printable(name)}: {why}")

    for entry in inbox.scan(after, report=report):
        if entry.name in claimed:
            continue
        if held_folders and source_folder(entry.name) in held_folders:
            held[source_folder(entry.name)] += 1
            continue
        if not valid_utf8(entry.name):
            unreadable.append(f"{printable(entry.name)}: the file name is not UTF-8, rename it")
            continue
        if unreadable_before.get(entry.name) == (entry.size, entry.mtime):
            unreadable.append(f"{printable(entry.name)}: could not be read by its last batch")
            continue
        if not entry.complete and now.timestamp() - entry.mtime < batching.settle_seconds:
            unsettled += 1
            continue
        if examined >= batching.tick_file_budget or (
            clock() - started > batching.tick_seconds_budget
        ):
            budget_hit = True
            break
        last_seen = entry.name
        examined += 1
        try:
            header = inbox.read_header(entry.name, batching.header_bytes)
        except FileNotFoundError:
            continue
        except OSError as exc:  # one unreadable file must not stop the inbox
            unreadable.append(f"{printable(entry.name)}: {exc.strerror or exc}")
            continue
        routed = classify_lane(header, entry.size, batching,
                               partial(inbox.read_range, entry.name))
        candidates.append(Candidate(entry.name, entry.size, entry.mtime, routed.lane,
                                    routed.why, estimate_seconds(routed, entry.size,
                                                                 outputs)))
    return Scan(
        candidates=tuple(candidates), unsettled=unsettled, claimed=len(claimed),
        unreadable=tuple(unreadable), special=tuple(special),
        held=tuple(HeldFolder(folder, held_folders[folder], count)
                   for folder, count in sorted(held.items())),
        budget_hit=budget_hit, next_after=last_seen if budget_hit else inbox.resume_after)


@dataclass(frozen=True)
class OpenBatch:
    """A batch whose manifest and open marker are written and whose run has not closed it."""

    key: str
    lane: str
    work: str  # UPLOAD or BULK
    created_at: datetime
    registered: bool  # its dynamic partition exists
    runs: tuple[RunFacts, ...] = ()  # its runs so far (the healer decides from them)
    bytes: int = 0  # what its sources weigh (a re-run stages them again)
    files: int = 0  # how many sources it holds (its run's time bound follows them)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], registered: bool,
                      runs: Sequence[RunFacts] = ()) -> OpenBatch:
        return cls(manifest["batch_key"], manifest["lane"], work_of(dict(manifest)),
                   datetime.fromisoformat(manifest["created_at"]), registered, tuple(runs),
                   sum(int(s.get("size") or 0) for s in manifest.get("sources") or ()),
                   len(manifest.get("sources") or ()))


@dataclass(frozen=True)
class BatchToOpen:
    """A batch closed this tick: its manifest to write (then its open marker), and the
    breaker state to record it as the probe of a half-open lane."""

    key: str
    batch: PlannedBatch
    manifest: dict[str, Any]
    probe: BreakerState | None = None


@dataclass(frozen=True)
class Launch:
    """One run to ask for: the batch key is its partition key and, for its first run, its
    run key; re-run n of a failed batch has run key `<batch>/heal-<n>`."""

    key: str
    lane: str
    work: str
    attempt: int = 0
    bytes: int = 0  # what a re-run stages again (this tick's new batches count in to_open)
    files: int = 0  # the batch's files (its run's `max_runtime` follows them)

    @property
    def run_key(self) -> str:
        return heal_run_key(self.key, self.attempt)


@dataclass(frozen=True)
class TickPlan:
    """What a tick decided; the sensor's open step carries it out."""

    to_open: tuple[BatchToOpen, ...] = ()
    register: tuple[str, ...] = ()  # partition keys to add: this tick's batches, orphans
    launches: tuple[Launch, ...] = ()
    cursor: str = ""
    message: str = ""
    batching: Plan = field(default_factory=Plan)  # per lane: batches closed, files waiting
    gave_up: tuple[Heal, ...] = ()  # failed batches whose re-runs are spent (alert once)

    @property
    def bytes_to_open(self) -> int:
        """What the new batches and the re-runs will stage and store (the disk guard's
        input)."""
        return sum(b.batch.size for b in self.to_open) + sum(r.bytes for r in self.launches)


def plan_tick(scan: Scan, open_batches: Sequence[OpenBatch], cursor: str | None,
              policy: Policy, now: datetime,
              breakers: Mapping[str, BreakerState] | None = None) -> TickPlan:
    """Everything the tick decides, from what it read: the batches to close now (in lanes,
    by files, bytes, work or wait, within the daily partition budget), their manifests and
    keys; the open batches to register again (manifest written, partition never added) or
    to run again (`operations.healing.heal`: no run came, or the last one failed and the
    cause has cleared); the message and next cursor."""
    candidates, breaker_notes, probing = gate_lanes(list(scan.candidates), breakers or {})
    state = BudgetState.from_cursor(cursor)
    open_per_lane = Counter(b.lane for b in open_batches if b.work == UPLOAD)
    plan = plan_batches(candidates, policy.batching, state, now,
                        policy.freshness_minutes * 60, open_per_lane)
    first_sequence = plan.budget.batches - len(plan.batches) + 1
    to_open = []
    for offset, batch in enumerate(plan.batches):
        key = batch_key(now, first_sequence + offset)
        to_open.append(BatchToOpen(key, batch, _manifest(key, batch, now),
                                   probing.get(batch.lane)))
    orphans = [b for b in open_batches if not b.registered]
    heals = {b.key: heal(b.key, b.created_at, b.runs, policy.healing, now,
                         _held_lane(b.lane, breakers or {}))
             for b in open_batches if b.registered}
    launches = ([Launch(b.key, b.batch.lane, UPLOAD, files=len(b.batch.files)) for b in to_open]
                + [Launch(b.key, b.lane, b.work, files=b.files) for b in orphans]
                + [Launch(b.key, b.lane, b.work, heals[b.key].attempt, b.bytes, b.files)
                   for b in open_batches if b.registered and heals[b.key].action == "run"])
    message = "; ".join(filter(None, [
        describe(plan, scan, len(orphans)),
        *(f"batch {h.batch_key}: {h.why}" for h in heals.values()
          if h.action in ("run", "wait", "give_up") and h.why),
        (f"{len(scan.special)} entries not taken (never opened): "
         + "; ".join(scan.special[:3]) + ("; …" if len(scan.special) > 3 else ""))
        if scan.special else "",
        *breaker_notes,
        *(f"folder {h.folder or '(root)'} held until tomorrow (UTC): {h.why}; "
          f"{h.waiting} files wait" for h in scan.held)]))
    return TickPlan(
        to_open=tuple(to_open),
        register=tuple(b.key for b in to_open) + tuple(b.key for b in orphans),
        launches=tuple(launches),
        cursor=tick_cursor(plan.budget.to_cursor(), scan.next_after),
        message=message, batching=plan,
        gave_up=tuple(h for h in heals.values() if h.action == "give_up"))


def _manifest(key: str, batch: PlannedBatch, now: datetime) -> dict[str, Any]:
    sources = [{"inbox": c.name, "size": c.size, "mtime": c.mtime}
               | ({"heavy_because": c.why} if c.why else {}) for c in batch.files]
    return new_manifest(key, batch.lane, sources, now, batch.closed_because,
                        estimated_seconds=batch.estimated_seconds)


def fit_to_space(plan: TickPlan, free: int | None, limits: Limits, now: datetime
                 ) -> tuple[TickPlan, str | None]:
    """The part of `plan` the store has room for, and what the disk guard says (None: all
    of it fits). Each file needs its bytes times `limits.output_factor` (original plus
    derivatives), and `limits.min_free_bytes` stay free. Re-runs of failed batches come
    first (their files waited longest), then the new batches in order, each cut to the files
    that fit, down to one: only when not even one file fits is everything held. Files left
    out are not claimed; a later tick takes them once there is room."""
    if free is None:
        return plan, None  # an object store does not fill up
    room = free - limits.min_free_bytes

    def need(size: int) -> int:
        return int(size * limits.output_factor)

    if need(plan.bytes_to_open) <= room:
        return plan, None
    launches: list[Launch] = []
    for rerun in (r for r in plan.launches if r.bytes):
        if need(rerun.bytes) <= room:
            launches.append(rerun)
            room -= need(rerun.bytes)
    to_open: list[BatchToOpen] = []
    left_out: list[Candidate] = []
    for opening in plan.to_open:
        taken = []
        for file in opening.batch.files:
            if need(file.size) <= room:
                taken.append(file)
                room -= need(file.size)
            else:
                left_out.append(file)
        if taken:
            batch = replace(opening.batch, files=tuple(taken),
                            closed_because=opening.batch.closed_because if len(taken) == len(
                                opening.batch.files) else "disk_space")
            to_open.append(replace(opening, batch=batch,
                                   manifest=_manifest(opening.key, batch, now)))
    kept = {b.key for b in to_open}
    launches = [r for r in plan.launches if r.bytes == 0 and (
        r.key in kept or r.key not in {b.key for b in plan.to_open})] + launches
    waiting = sum(need(f.size) for f in left_out) + sum(
        need(r.bytes) for r in plan.launches if r.bytes and r not in launches)
    guard = (f"disk guard: {_size(free)} free in the store (limits.min_free_bytes "
             f"{_size(limits.min_free_bytes)} kept free); {len(left_out)} files wait in the "
             f"inbox and need {_size(waiting)} more")
    if not to_open and not launches:
        return replace(plan, to_open=(), register=(), launches=(),
                       message="; ".join(filter(None, [guard, plan.message]))), guard
    return replace(plan, to_open=tuple(to_open),
                   register=tuple(k for k in plan.register if k in kept
                                  or k not in {b.key for b in plan.to_open}),
                   launches=tuple(launches),
                   message="; ".join(filter(None, [plan.message, guard]))), guard


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count} bytes"


def _held_lane(lane: str, breakers: Mapping[str, BreakerState]) -> str | None:
    """Why a lane's failed batches must not run again yet (None: they may)."""
    state = breakers.get(lane)
    if state is None or state.status == "closed":
        return None
    return f"lane {lane}'s circuit is {state.status.replace('_', '-')} ({state.reason})"


def gate_lanes(candidates: list[Candidate], breakers: Mapping[str, BreakerState]
               ) -> tuple[list[Candidate], list[str], dict[str, BreakerState]]:
    """Hold the files of lanes whose circuit is open; a half-open lane without a probe sends
    its oldest file alone as the probe. Returns the files kept, what to say, and the
    half-open lanes' states (to record the probe batch once it is open)."""
    notes: list[str] = []
    probing: dict[str, BreakerState] = {}
    kept = list(candidates)
    for lane in LANES:
        state = breakers.get(lane)
        if state is None or state.status == "closed":
            continue
        waiting = [c for c in kept if c.lane == lane]
        kept = [c for c in kept if c.lane != lane]
        if state.status == "half_open" and not state.probe_batch and waiting:
            probe = min(waiting, key=lambda c: (c.mtime, c.name))
            kept.append(probe)
            probing[lane] = state
            notes.append(f"lane {lane}: circuit half-open, probing with {probe.name}")
        else:
            notes.append(f"lane {lane}: circuit {state.status.replace('_', '-')} since "
                         f"{state.since[:19]} ({state.reason}); {len(waiting)} files wait")
    return kept, notes, probing


def inbox_after(cursor: str | None) -> str:
    """Where this tick's inbox window starts ("" = the beginning)."""
    return json.loads(cursor).get("inbox_after", "") if cursor else ""


def tick_cursor(budget_cursor: str, next_after: str) -> str:
    """The batch budget, plus where the next tick's inbox window starts (one name, if any)."""
    if not next_after:
        return budget_cursor
    return json.dumps({**json.loads(budget_cursor), "inbox_after": next_after},
                      sort_keys=True)


def describe(plan: Plan, scan: Scan, orphans: int) -> str:
    """What the tick did, in words, for the sensor's tick history in the UI."""
    files = sum(len(b.files) for b in plan.batches)
    lanes = Counter(b.lane for b in plan.batches)
    parts = []
    if plan.batches:
        by_lane = ", ".join(f"{n} {lane}" for lane, n in sorted(lanes.items()))
        parts.append(f"{len(plan.batches)} runs for {files} files ({by_lane})")
        why = Counter(c.why.split(":")[0] for b in plan.batches for c in b.files if c.why)
        if why:
            parts.append("heavy by " + ", ".join(f"{reason} ({n})"
                                                 for reason, n in sorted(why.items())))
        each = [f"{b.estimated_seconds:.{2 if b.estimated_seconds < 10 else 0}f}"
                for b in plan.batches[:5]]
        parts.append("estimated work " + ", ".join(each)
                     + (", …" if len(plan.batches) > 5 else "") + " CPU-s")
    if plan.waiting:
        parts.append(f"{plan.waiting} files waiting for their batch to fill"
                     + (" (daily partition budget reached)" if plan.over_budget else ""))
    if scan.unsettled:
        parts.append(f"{scan.unsettled} files still being written")
    if scan.claimed:
        parts.append(f"{scan.claimed} files held by open batches")
    if scan.budget_hit:
        parts.append("tick budget reached; the rest next tick")
    if orphans:
        parts.append(f"{orphans} unregistered batches recovered")
    if scan.unreadable:
        parts.append(f"{len(scan.unreadable)} files unreadable, left in the inbox "
                     f"(e.g. {scan.unreadable[0]})")
    return "; ".join(parts) or "nothing new in the inbox"


def printable(name: str) -> str:
    """An inbox name fit for a tick message: sanitised (no control characters, NFC, capped);
    a name that is not UTF-8 shows its bytes escaped."""
    if not valid_utf8(name):
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return sanitize_name(name)


def valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in a Linux file name (surrogate escapes)
        return False
    return True
