"""The inbox sensor: resources -> scan -> plan -> open.

Scanning (list, stat, header, lane, estimated work) and planning (which batches close, what
to register and launch, the next cursor) are pure steps in `operations/inbox_tick.py`; this
module reads the store's state for them and opens what was planned: each manifest and open
marker is written durably before the `SensorResult` registers the batch and launches it."""


import time
from datetime import UTC, datetime

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from media_assets.core.policy import Limits, Policy
from media_assets.core.store import ObjectStore
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
    disk_shortfall,
    ingestion_paused,
    note_disk_guard,
)
from media_assets.operations.inbox_tick import (
    OpenBatch,
    TickPlan,
    inbox_after,
    plan_tick,
    scan_inbox,
)
from media_assets.records.layout import CATALOG_FRAGMENTS_PREFIX
from media_assets.records.manifest import claimed_inbox_names, open_batch, unreadable_files


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
    now, started = datetime.now(UTC), time.monotonic()
    claimed, manifests = claimed_inbox_names(store)
    open_batches = [OpenBatch.from_manifest(m, context.instance.has_dynamic_partition(
        BATCH_PARTITIONS, m["batch_key"])) for m in manifests]
    scan = scan_inbox(
        drop, rules.batching, now=now, after=inbox_after(context.cursor), claimed=claimed,
        unreadable_before=unreadable_files(store),
        held_folders=budget_paused_folders(store, now.date().isoformat()),
        outputs=OutputSizes.of(rules), started=started)
    plan = plan_tick(scan, open_batches, context.cursor, rules, now,
                     _breakers(context, store, rules, now, notifier))
    return open_and_launch(context, store, plan, rules.limits, now, notifier)


def open_and_launch(context: SensorEvaluationContext, store: ObjectStore, plan: TickPlan,
                    limits: Limits, now: datetime, notifier: Notifier | None
                    ) -> SensorResult | SkipReason:
    """Write each planned batch's manifest and open marker, then register and launch.

    Below the disk guard's free space nothing is written and the cursor stays, so the same
    batches are planned again once there is room. A tick that dies after a write is repaired
    by the next (an open manifest without its partition is registered again)."""
    shortfall = disk_shortfall(store.free_bytes(), plan.bytes_to_open, limits)
    note_disk_guard(store, shortfall, now, notifier)
    if shortfall:
        context.log.error(f"ALERT {shortfall}")
        return SkipReason(shortfall)
    for batch in plan.to_open:
        open_batch(store, batch.manifest)
        if batch.probe is not None:  # the half-open lane's single-file probe
            set_probe(store, batch.batch.lane, batch.probe, batch.key)
    if not plan.launches:
        context.update_cursor(plan.cursor)
        return SkipReason(plan.message)
    context.log.info(plan.message)
    return SensorResult(
        run_requests=[_run_request(run.key, run.lane, run.work) for run in plan.launches],
        dynamic_partitions_requests=[batch_partitions.build_add_request(list(plan.register))]
        if plan.register else [],
        cursor=plan.cursor,
    )


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
