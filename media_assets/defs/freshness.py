"""Service level: every file that lands is catalogued with its derivatives within the policy's
`freshness_minutes`. A scheduled check measures the oldest file still waiting (an idle inbox
is fresh, unlike Dagster's FreshnessPolicy, which ages the last materialisation)."""

from collections import Counter
from datetime import UTC, datetime

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunsFilter,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
)

from media_assets.defs.catalog import catalog
from media_assets.defs.partitions import LANE_TAG
from media_assets.defs.resources import (
    AlertNotifier,
    InboxResource,
    MediaStorage,
    PolicyResource,
)
from media_assets.operations.alerts import Alert, raise_alert
from media_assets.operations.batching import LANES
from media_assets.operations.freshness import oldest_pending
from media_assets.records.manifest import claimed_inbox_names, unreadable_files


def utcnow() -> datetime:
    """The check's clock (tests freeze it)."""
    return datetime.now(UTC)


@asset_check(asset=catalog, description="The oldest file that arrived and is not catalogued "
             "yet has waited less than the policy's freshness_minutes.")
def arrivals_are_catalogued_in_time(context: AssetCheckExecutionContext, storage: MediaStorage,
                                    inbox: InboxResource,
                                    policy: PolicyResource,
                                    alerts: AlertNotifier) -> AssetCheckResult:
    store = storage.store()
    limit = policy.for_run(storage, context.run.run_id).freshness_minutes * 60
    _, open_batches = claimed_inbox_names(store)
    unreadable = unreadable_files(store)  # reported by every sensor tick, not late work
    entries = [e for e in inbox.inbox().list_entries()
               if unreadable.get(e.name) != (e.size, e.mtime)]
    pending = oldest_pending(entries, open_batches, utcnow())
    overdue = pending.oldest_age_seconds > limit
    if overdue:
        message = (f"{pending.oldest_name} has waited {pending.oldest_age_seconds / 60:.1f} min "
                   f"(limit {limit / 60:.0f} min); {pending.waiting} files pending")
        context.log.error(f"ALERT freshness: {message}")
        raise_alert(store, Alert("freshness", message,
                                 details={"pending_files": pending.waiting}),
                    alerts.notifier(), actor="freshness_check", run_id=context.run.run_id)
    return AssetCheckResult(
        passed=not overdue, severity=AssetCheckSeverity.ERROR,
        metadata={"pending_files": pending.waiting,
                  "oldest_wait_minutes": round(pending.oldest_age_seconds / 60, 2),
                  "oldest_file": pending.oldest_name or "",
                  "limit_minutes": limit / 60,
                  **backlog(context, entries, open_batches)})


def backlog(context: AssetCheckExecutionContext, entries: list, open_batches: list) -> dict:
    """Where the work waits: the inbox (not yet in a batch), open batches, queued runs."""
    claimed = {s.get("inbox") for m in open_batches for s in m["sources"]}
    queued = context.instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.QUEUED]))
    lanes = Counter(run.tags.get(LANE_TAG, "other") for run in queued)
    return {"inbox_depth": sum(e.name not in claimed for e in entries),
            "open_batches": len(open_batches),
            **{f"queued_runs_{lane}": lanes.get(lane, 0) for lane in (*LANES, "rebuild")}}


freshness_job = define_asset_job(
    "check_freshness", selection=AssetSelection.checks(arrivals_are_catalogued_in_time),
    description="Measure how long the oldest uncatalogued arrival has waited.")
freshness_schedule = ScheduleDefinition(
    job=freshness_job, cron_schedule="*/5 * * * *", default_status=DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: the freshness check (fails and alerts when overdue).")
