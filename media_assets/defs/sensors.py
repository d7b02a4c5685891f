"""The inbox sensor: list, stat and read a small header of each new file, sort files into
lanes, close batches, write each batch's manifest, then register it and launch its run."""


import json
import time
from collections import Counter
from datetime import UTC, datetime
from functools import partial

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from media_assets.codec.untrusted import sanitize_name
from media_assets.defs.jobs import LANE_JOBS, job_for_lane
from media_assets.defs.partitions import batch_partitions
from media_assets.defs.queue import queue_tags
from media_assets.defs.resources import (
    AlertNotifier,
    InboxResource,
    MediaStorage,
    PolicyResource,
)
from media_assets.operations.alerts import Alert, raise_alert
from media_assets.operations.batching import (
    LANES,
    BudgetState,
    Candidate,
    batch_key,
    classify_lane,
    plan_batches,
)
from media_assets.operations.breaker import next_state, set_probe
from media_assets.operations.control import (
    budget_paused_folders,
    disk_shortfall,
    ingestion_paused,
    note_disk_guard,
)
from media_assets.operations.usage import source_folder
from media_assets.records.layout import CATALOG_FRAGMENTS_PREFIX
from media_assets.records.manifest import (
    UPLOAD,
    claimed_inbox_names,
    new_manifest,
    open_batch,
    unreadable_files,
    work_of,
)

RELAUNCH_AFTER = 120  # seconds an open batch may wait for its run before it is asked again


def _run_request(key: str, lane: str, work: str) -> RunRequest:
    """One batch's run: its lane's job, tagged for the run queue (uploads ahead of bulk)."""
    return RunRequest(run_key=key, partition_key=key, job_name=job_for_lane(lane),
                      tags=queue_tags(lane, work))


@sensor(
    jobs=list(LANE_JOBS.values()),
    minimum_interval_seconds=4,  # not 5: that aliases with the daemon's 5 s loop
    default_status=DefaultSensorStatus.RUNNING,
    description="Groups settled inbox files into batches and launches one run per batch.",
)
def inbox_sensor(
    context: SensorEvaluationContext,
    inbox: InboxResource,
    storage: MediaStorage,
    policy: PolicyResource,
    alerts: AlertNotifier,
) -> SensorResult | SkipReason:
    store, drop, rules, notifier = storage.store(), inbox.inbox(), policy.load(), alerts.notifier()
    paused = ingestion_paused(store)
    if paused:
        return SkipReason(f"ingestion paused since {paused['paused_at']} by {paused['actor']}: "
                          f"{paused['reason']} (files wait in the inbox; run resume_ingestion)")
    batching = rules.batching
    now = datetime.now(UTC)
    started = time.monotonic()
    claimed, open_manifests = claimed_inbox_names(store)

    # Batches whose manifest was written but whose registration did not happen (a tick that
    # died half-way) are registered again; their run key makes the launch idempotent.
    orphans = [m for m in open_manifests
               if not context.instance.has_dynamic_partition(batch_partitions.name,
                                                             m["batch_key"])]

    candidates: list[Candidate] = []
    unsettled = examined = 0
    unreadable: list[str] = []
    skip_unreadable = unreadable_files(store)
    over_budget = budget_paused_folders(store, now.date().isoformat())
    held_by_budget: Counter[str] = Counter()
    budget_hit = False
    special: list[str] = []  # links, FIFOs, devices, ...: never opened, said in the tick

    def report(name: str, why: str) -> None:
        special.append(f"{_printable(name)}: {why}")

    # This tick's window of the inbox: a folder is walked whole; an S3 prefix is listed a few
    # pages at a time, resuming after the last name the previous tick reached (the cursor).
    after = _inbox_after(context.cursor)
    last_seen = after
    for entry in drop.scan(after, report=report):
        if entry.name in claimed:
            continue
        if over_budget and source_folder(entry.name) in over_budget:
            held_by_budget[source_folder(entry.name)] += 1
            continue
        if not _valid_utf8(entry.name):
            unreadable.append(f"{_printable(entry.name)}: the file name is not UTF-8, "
                              "rename it")
            continue
        if skip_unreadable.get(entry.name) == (entry.size, entry.mtime):
            unreadable.append(f"{_printable(entry.name)}: could not be read by its last batch")
            continue
        if now.timestamp() - entry.mtime < batching.settle_seconds:
            unsettled += 1
            continue
        if examined >= batching.tick_file_budget or (
            time.monotonic() - started > batching.tick_seconds_budget
        ):
            budget_hit = True
            break
        last_seen = entry.name
        examined += 1
        try:
            header = drop.read_header(entry.name, batching.header_bytes)
        except FileNotFoundError:
            continue
        except OSError as exc:  # one unreadable file must not stop the inbox
            unreadable.append(f"{_printable(entry.name)}: {exc.strerror or exc}")
            continue
        routed = classify_lane(header, entry.size, batching,
                               partial(drop.read_range, entry.name))
        candidates.append(Candidate(entry.name, entry.size, entry.mtime, routed.lane,
                                    routed.why))

    candidates, breaker_notes, probing = _apply_breakers(context, store, rules, candidates, now,
                                                           notifier)
    state = BudgetState.from_cursor(context.cursor)
    plan = plan_batches(candidates, batching, state, now, rules.freshness_minutes * 60)
    shortfall = disk_shortfall(
        store.free_bytes(), sum(c.size for b in plan.batches for c in b.files), rules.limits)
    note_disk_guard(store, shortfall, now, notifier)
    if shortfall:
        context.log.error(f"ALERT {shortfall}")
        return SkipReason(shortfall)  # the cursor stays: these batches are planned again
    new_keys, requests = [], []
    first_sequence = plan.budget.batches - len(plan.batches) + 1
    for offset, batch in enumerate(plan.batches):
        key = batch_key(now, first_sequence + offset)
        sources = [{"inbox": c.name, "size": c.size, "mtime": c.mtime}
                   | ({"heavy_because": c.why} if c.why else {}) for c in batch.files]
        open_batch(store, new_manifest(key, batch.lane, sources, now, batch.closed_because))
        if batch.lane in probing:  # the half-open lane's single-file probe
            set_probe(store, batch.lane, probing[batch.lane], key)
        new_keys.append(key)
        requests.append(_run_request(key, batch.lane, UPLOAD))
    for manifest in orphans:  # also replay batches: released files, bulk work
        new_keys.append(manifest["batch_key"])
        requests.append(_run_request(manifest["batch_key"], manifest["lane"],
                                     work_of(manifest)))
    # A registered batch still open after a while may never have had its run (daemon stopped
    # between registering and launching, run deleted): ask again; the run key makes the
    # daemon skip every batch that already has its run.
    stuck = [m for m in open_manifests if m not in orphans
             and (now - datetime.fromisoformat(m["created_at"])).total_seconds() > RELAUNCH_AFTER]
    requests.extend(_run_request(m["batch_key"], m["lane"], work_of(m)) for m in stuck)

    message = "; ".join(filter(None, [
        _describe(plan, unsettled, len(claimed), budget_hit, len(orphans), unreadable),
        special and (f"{len(special)} entries not taken (never opened): "
                     + "; ".join(special[:3]) + ("; …" if len(special) > 3 else "")),
        *breaker_notes,
        *(f"folder {folder or '(root)'} held until tomorrow (UTC): {over_budget[folder]}; "
          f"{count} files wait" for folder, count in sorted(held_by_budget.items()))]))
    cursor = _cursor(plan.budget.to_cursor(), last_seen if budget_hit else drop.resume_after)
    if not requests:
        context.update_cursor(cursor)
        return SkipReason(message)
    context.log.info(message)
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[batch_partitions.build_add_request(new_keys)]
        if new_keys else [],
        cursor=cursor,
    )


def _inbox_after(cursor: str | None) -> str:
    """Where this tick's inbox window starts ("" = the beginning)."""
    return json.loads(cursor).get("inbox_after", "") if cursor else ""


def _cursor(budget_cursor: str, inbox_after: str) -> str:
    """The batch budget, plus where the next tick's inbox window starts (one name, if any)."""
    if not inbox_after:
        return budget_cursor
    return json.dumps({**json.loads(budget_cursor), "inbox_after": inbox_after},
                      sort_keys=True)


def _apply_breakers(context: SensorEvaluationContext, store, rules, candidates: list[Candidate],
                    now: datetime, notifier) -> tuple[list[Candidate], list[str], dict]:
    """Hold the lanes whose circuit is open; let a half-open lane send one file as a probe."""
    notes, probing, kept = [], {}, list(candidates)

    def done(batch: str) -> bool:
        return any(True for _ in store.list(f"{CATALOG_FRAGMENTS_PREFIX}{batch}/"))

    for lane in LANES:
        state, changed = next_state(store, lane, rules.breaker, now, done)
        if changed and state.status == "open":
            context.log.error(f"ALERT circuit open for lane {lane}: {state.reason}")
            raise_alert(store, Alert(f"breaker:{lane}", f"circuit open: {state.reason}",
                                     details={"lane": lane}),
                        notifier, actor="inbox_sensor", now=now)
        elif changed and state.status == "closed":
            raise_alert(store, Alert(f"breaker:{lane}", "circuit closed: the probe batch "
                                     "succeeded", severity="resolved", details={"lane": lane}),
                        notifier, actor="inbox_sensor", now=now)
        if state.status == "closed":
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


def _printable(name: str) -> str:
    """An inbox name fit for a tick message: sanitised (no control characters, NFC, capped);
    a name that is not UTF-8 shows its bytes escaped."""
    if not _valid_utf8(name):
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return sanitize_name(name)


def _valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in a Linux file name (surrogate escapes)
        return False
    return True


def _describe(plan, unsettled: int, claimed: int, budget_hit: bool, orphans: int,
              unreadable: list[str]) -> str:
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
    if plan.waiting:
        parts.append(f"{plan.waiting} files waiting for their batch to fill"
                     + (" (daily partition budget reached)" if plan.over_budget else ""))
    if unsettled:
        parts.append(f"{unsettled} files still being written")
    if claimed:
        parts.append(f"{claimed} files held by open batches")
    if budget_hit:
        parts.append("tick budget reached; the rest next tick")
    if orphans:
        parts.append(f"{orphans} unregistered batches recovered")
    if unreadable:
        parts.append(f"{len(unreadable)} files unreadable, left in the inbox "
                     f"(e.g. {unreadable[0]})")
    return "; ".join(parts) or "nothing new in the inbox"
