"""Service level: every file that lands is catalogued with its derivatives within the policy's
`freshness_minutes`. A scheduled check measures the oldest file still waiting (an idle inbox
is fresh, unlike Dagster's FreshnessPolicy, which ages the last materialisation)."""

from datetime import UTC, datetime

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    DefaultScheduleStatus,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
)

from media_assets.defs.catalog import catalog
from media_assets.defs.resources import (
    AlertNotifier,
    InboxResource,
    MediaStorage,
    PolicyResource,
)
from media_assets.media.alerts import Alert, raise_alert
from media_assets.media.freshness import oldest_pending
from media_assets.media.manifest import claimed_inbox_names, unreadable_files


def utcnow() -> datetime:
    """The check's clock (tests freeze it)."""
    return datetime.now(UTC)


@asset_check(asset=catalog, description="The oldest file that arrived and is not catalogued "
             "yet has waited less than the policy's freshness_minutes.")
def arrivals_are_catalogued_in_time(context: AssetCheckExecutionContext, storage: MediaStorage,
                                    inbox: InboxResource,
                                    policy: PolicyResource,
                                    alerts: AlertNotifier) -> AssetCheckResult:
    store, limit = storage.store(), policy.load().freshness_minutes * 60
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
                  "limit_minutes": limit / 60})


freshness_job = define_asset_job(
    "check_freshness", selection=AssetSelection.checks(arrivals_are_catalogued_in_time),
    description="Measure how long the oldest uncatalogued arrival has waited.")
freshness_schedule = ScheduleDefinition(
    job=freshness_job, cron_schedule="*/5 * * * *", default_status=DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: the freshness check (fails and alerts when overdue).")
