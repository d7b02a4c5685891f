"""Retention from the launchpad and on a schedule: originals to the cold tier or purged, and
quarantined bytes purged, as the policy's retention classes say; a dry run shows the plan."""

from datetime import UTC, datetime

from dagster import (
    Config,
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    RunRequest,
    job,
    op,
    schedule,
)
from pydantic import Field

from media_assets.defs.common import record_usage, table
from media_assets.defs.resources import MediaStorage, PolicyResource
from media_assets.records import erasure
from media_assets.records.catalog import read_catalog
from media_assets.records.manifest import all_quarantine_records
from media_assets.records.metadata import METADATA_VERSIONS
from media_assets.records.retention import apply_retention as apply_plan
from media_assets.records.retention import describe, plan_retention


class RetentionConfig(Config):
    dry_run: bool = Field(default=True, description="Only show what is due; change nothing.")
    as_of: str = Field(default="", description="Judge ages as of this ISO time (default now).")


# Retention and erasure rewrite the lifecycle state: one at a time (limit set by `make dev`).
LIFECYCLE_POOL = "lifecycle"


@op(pool=LIFECYCLE_POOL,
    description="Move or purge what the retention classes say is due; record it in the audit "
                "log and the catalog's lifecycle state.")
def retention_op(context: OpExecutionContext, config: RetentionConfig, storage: MediaStorage,
                 policy: PolicyResource) -> None:
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    now = datetime.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    actions = plan_retention(read_catalog(store), all_quarantine_records(store),
                             rules.retention, now, store.tier)
    if not config.dry_run:
        apply_plan(store, actions, run_id=context.run.run_id, now=now)
    counts: dict[str, int] = {}
    for action in actions:
        counts[action.action] = counts.get(action.action, 0) + 1
    context.add_output_metadata({
        "dry_run": config.dry_run,
        "as_of": now.isoformat(),
        "due": MetadataValue.json(counts),
        "actions": table(describe(actions), [
            ("action", "string"), ("content_id", "string"), ("key", "string"),
            ("retention_class", "string"), ("reason", "string")]),
        **(record_usage(context, store, "apply_retention") if not config.dry_run else {}),
    })
    verb = "would apply" if config.dry_run else "applied"
    context.log.info(f"retention {verb}: {counts or 'nothing due'}")


@job(description="Apply retention (config `dry_run: false` to act; the default only shows the "
                 "plan).")
def apply_retention():
    retention_op()


@schedule(job=apply_retention, cron_schedule="0 2 * * *",
          default_status=DefaultScheduleStatus.STOPPED,
          description="Daily retention at 02:00 UTC. Off until an operator turns it on.")
def daily_retention():
    return RunRequest(run_config={"ops": {"retention_op": {"config": {"dry_run": False}}}})


class ErasureConfig(Config):
    content_id: str = Field(description="The full SHA-256 content id to erase everywhere.")
    reason: str = Field(description="Why (takedown, privacy request, ...): kept in the audit "
                                    "log; nothing else about the content is.")
    actor: str = Field(default="operator", description="Who asked for it.")


@op(pool=LIFECYCLE_POOL,
    description="Erase one content id everywhere: store, derivatives, quarantine, catalog, "
                "index and archive days; the audit log records the erasure.")
def erase_op(context: OpExecutionContext, config: ErasureConfig, storage: MediaStorage,
             policy: PolicyResource) -> None:
    if not config.reason.strip():
        raise Failure("an erasure needs a reason", allow_retries=False)
    summary = erasure.erase_content(
        storage.store(), config.content_id.strip().lower(), config.reason,
        policy=policy.for_run(storage, context.run.run_id),
        metadata_versions=list(METADATA_VERSIONS.values()),
        run_id=context.run.run_id, actor=config.actor, now=datetime.now(UTC))
    context.add_output_metadata({k: MetadataValue.json(v) if isinstance(v, list) else v
                                 for k, v in summary.items()})
    context.log.info(f"erased {config.content_id}: {summary}")


@job(description="Erase one content everywhere (takedown or privacy request).")
def erase_content():
    erase_op()


lifecycle_jobs = [apply_retention, erase_content]
lifecycle_schedules = [daily_retention]
