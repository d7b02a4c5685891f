"""The inbox sensor: resources -> scan -> plan -> open.

Scanning (list, stat, header, lane, estimated work) and planning (which batches close, what
to register and launch, the next cursor) are pure steps in `operations/inbox_tick.py`; this
module reads the store's state for them and opens what was planned: each manifest and open
marker is written durably before the `SensorResult` registers the batch and launches it."""


import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from media_assets.core.errors import MachineFault
from media_assets.core.policy import Policy
from media_assets.core.store import Inbox, ObjectStore
from media_assets.defs.jobs import LANE_JOBS, job_for_lane
from media_assets.defs.partitions import BATCH_PARTITIONS, batch_partitions
from media_assets.defs.queue import queue_tags
from media_assets.defs.resources import (
    AlertNotifier,
    InboxResource,
    MediaStorage,
    PolicyResource,
)
from media_assets.operations.alerts import Alert, Notifier, raise_alert
from media_assets.operations.batching import LANES, OutputSizes
from media_assets.operations.breaker import BreakerState, next_state, set_probe
from media_assets.operations.control import (
    budget_paused_folders,
    ingestion_paused,
    note_disk_guard,
    note_policy_problem,
)
from media_assets.operations.healing import (
    FAILED,
    HEAL_ATTEMPT_TAG,
    LIVE,
    SUCCEEDED,
    Heal,
    RunFacts,
)
from media_assets.operations.inbox_tick import (
    Launch,
    OpenBatch,
    TickPlan,
    fit_to_space,
    inbox_after,
    plan_tick,
    scan_inbox,
)
from media_assets.operations.inbox_watch import wait_for_arrival
from media_assets.operations.run_limits import max_runtime_tag
from media_assets.records.layout import CATALOG_FRAGMENTS_PREFIX
from media_assets.records.manifest import claimed_inbox_names, open_batch, unreadable_files


def _run_request(run: Launch, rules: Policy) -> RunRequest:
    """One batch's run: its lane's job, tagged for the run queue (uploads ahead of bulk),
    with its time bound for run monitoring and, for a re-run, its attempt number."""
    tags = queue_tags(run.lane, run.work) | max_runtime_tag(rules, run.lane, run.files) | (
        {HEAL_ATTEMPT_TAG: str(run.attempt)} if run.attempt else {})
    return RunRequest(run_key=run.run_key, partition_key=run.key,
                      job_name=job_for_lane(run.lane), tags=tags)


PARTITION_TAG = "dagster/partition"  # Dagster tags every partitioned run with its key
_STATES = {DagsterRunStatus.SUCCESS: SUCCEEDED, DagsterRunStatus.FAILURE: FAILED,
           DagsterRunStatus.CANCELED: FAILED}


def run_facts(context: SensorEvaluationContext, batch_key: str) -> list[RunFacts]:
    """The runs of a batch's partition, as the healer reads them (the newest run's failure
    message too, so the tick can say why the batch runs again)."""
    records = context.instance.get_run_records(
        RunsFilter(tags={PARTITION_TAG: batch_key}))
    newest = max(records, key=lambda r: r.create_timestamp, default=None)
    return [RunFacts(
        run_id=r.dagster_run.run_id, state=_STATES.get(r.dagster_run.status, LIVE),
        ended_at=datetime.fromtimestamp(r.end_time, UTC) if r.end_time else None,
        will_retry=r.dagster_run.tags.get("dagster/will_retry") == "true",
        heal_attempt=int(r.dagster_run.tags.get(HEAL_ATTEMPT_TAG) or 0),
        error=_failure_message(context, r.dagster_run.run_id)
        if r is newest and r.dagster_run.status == DagsterRunStatus.FAILURE else "")
        for r in records]


def _failure_message(context: SensorEvaluationContext, run_id: str) -> str:
    """Why the run failed: its failed step's error (e.g. an invalid policy file, a full
    disk), else the run's failure message (e.g. run monitoring's finding)."""
    records = context.instance.all_logs(
        run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE})
    for record in reversed(records):
        event = record.dagster_event
        if event is not None and event.is_step_failure:
            error = event.step_failure_data.error
            lines = error.message.strip().splitlines() if error else []
            return lines[0] if lines else ""
    return records[-1].message if records else ""


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
    store, drop, notifier = storage.store(), inbox.inbox(), alerts.notifier()
    started = time.monotonic()
    try:
        tick = _tick(context, context.cursor, store, drop, notifier, storage, policy)
        # An idle tick watches the inbox (policy batching.watch_seconds) and plans again as
        # soon as a file arrives, instead of leaving it to the next tick 5 s later.
        while tick.idle is not None and wait_for_arrival(
                drop, tick.idle.batching, claimed=tick.claimed,
                deadline=started + tick.idle.batching.watch_seconds):
            tick = _tick(context, tick.cursor, store, drop, notifier, storage, policy)
        if isinstance(tick.result, SkipReason) and tick.cursor != context.cursor:
            context.update_cursor(tick.cursor)
        return tick.result
    except MachineFault as fault:  # not even the tick's small state writes fit
        context.log.error(f"ALERT the store's disk is full or read-only: {fault}")
        return SkipReason(f"the store's disk is full or read-only ({fault}); files wait in "
                          "the inbox, and batches run again once there is room")


@dataclass(frozen=True)
class _Tick:
    """One evaluation's answer; `idle` (the policy in force) when it launched and opened
    nothing, so the sensor may watch the inbox for what comes next."""

    result: SensorResult | SkipReason
    cursor: str | None
    claimed: frozenset[str] = frozenset()
    idle: Policy | None = None


def _tick(context: SensorEvaluationContext, cursor: str | None, store: ObjectStore,
          drop: Inbox, notifier: Notifier | None, storage: MediaStorage,
          policy: PolicyResource) -> _Tick:
    rules = policy.for_tick(storage)
    problem = str(policy.problem) if policy.problem else None
    note_policy_problem(store, problem, datetime.now(UTC), notifier)
    if problem:
        context.log.error(f"ALERT policy file invalid, this tick uses the last valid version: "
                          f"{problem}")
    paused = ingestion_paused(store)
    if paused:
        return _Tick(SkipReason(
            f"ingestion paused since {paused['paused_at']} by {paused['actor']}: "
            f"{paused['reason']} (files wait in the inbox; run resume_ingestion)"), cursor)
    now, started = datetime.now(UTC), time.monotonic()
    claimed, manifests = claimed_inbox_names(store)
    open_batches = []
    for manifest in manifests:
        key = manifest["batch_key"]
        registered = context.instance.has_dynamic_partition(BATCH_PARTITIONS, key)
        open_batches.append(OpenBatch.from_manifest(
            manifest, registered, run_facts(context, key) if registered else ()))
    scan = scan_inbox(
        drop, rules.batching, now=now, after=inbox_after(cursor), claimed=claimed,
        unreadable_before=unreadable_files(store),
        held_folders=budget_paused_folders(store, now.date().isoformat()),
        outputs=OutputSizes.of(rules), started=started)
    plan = plan_tick(scan, open_batches, cursor, rules, now,
                     _breakers(context, store, rules, now, notifier))
    if problem:
        plan = replace(plan, message=f"policy file invalid, using the last valid version "
                                     f"({problem}); {plan.message}")
    result, next_cursor = open_and_launch(context, store, plan, cursor, rules, now, notifier)
    idle = isinstance(result, SkipReason) and next_cursor == plan.cursor and not plan.to_open \
        and not problem
    return _Tick(result, next_cursor, frozenset(claimed), rules if idle else None)


def open_and_launch(context: SensorEvaluationContext, store: ObjectStore, plan: TickPlan,
                    cursor: str | None, rules: Policy, now: datetime,
                    notifier: Notifier | None) -> tuple[SensorResult | SkipReason, str | None]:
    """Write each planned batch's manifest and open marker, then register and launch; also
    the cursor a skip leaves (a `SensorResult` carries its own).

    The disk guard cuts the plan to what the store has room for (`fit_to_space`, down to one
    file); when not even one file fits, nothing is written and the cursor stays, so the same
    batches are planned again once there is room. A tick that dies after a write is repaired
    by the next (an open manifest without its partition is registered again)."""
    plan, shortfall = fit_to_space(plan, store.free_bytes(), rules.limits, now)
    note_disk_guard(store, shortfall, now, notifier)
    if shortfall:
        context.log.error(f"ALERT {shortfall}")
    if shortfall and not plan.to_open and not plan.launches:
        return SkipReason(plan.message), cursor
    for batch in plan.to_open:
        open_batch(store, batch.manifest)
        if batch.probe is not None:  # the half-open lane's single-file probe
            set_probe(store, batch.batch.lane, batch.probe, batch.key)
    for given_up in plan.gave_up:
        _alert_once(context, store, given_up, now, notifier)
    if not plan.launches:
        return SkipReason(plan.message), plan.cursor
    context.log.info(plan.message)
    return SensorResult(
        run_requests=[_run_request(run, rules) for run in plan.launches],
        dynamic_partitions_requests=[batch_partitions.build_add_request(list(plan.register))]
        if plan.register else [],
        cursor=plan.cursor,
    ), plan.cursor


def _alert_once(context: SensorEvaluationContext, store: ObjectStore, given_up: Heal,
                now: datetime, notifier: Notifier | None) -> None:
    """One alert per batch whose re-runs are spent (every tick still names it)."""
    marker = f"control/healing/{given_up.batch_key}-gave-up.json"
    if store.put_bytes_if_absent(marker, given_up.why.encode()):
        context.log.error(f"ALERT batch {given_up.batch_key}: {given_up.why}")
        raise_alert(store, Alert(f"batch:{given_up.batch_key}", given_up.why,
                                 details={"batch": given_up.batch_key,
                                          "attempts": given_up.attempt}),
                    notifier, actor="inbox_sensor", now=now)


def _breakers(context: SensorEvaluationContext, store: ObjectStore, rules: Policy,
              now: datetime, notifier: Notifier | None) -> dict[str, BreakerState]:
    """Each lane's circuit after this tick's transitions, alerting when one opens or
    closes (the plan holds an open lane's files and picks a half-open lane's probe)."""
    states = {}

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
        states[lane] = state
    return states
