"""Retention from the launchpad and on a schedule: originals to the cold tier or purged, and
quarantined bytes purged, as the policy's retention classes say; a dry run shows the plan."""

from datetime import UTC, date, datetime

from dagster import (
    Config,
    DagsterRunStatus,
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    job,
    op,
    schedule,
)
from pydantic import Field

from media_assets.defs.common import record_usage, table
from media_assets.defs.partitions import BATCH_PARTITIONS
from media_assets.defs.resources import MediaStorage, PolicyResource
from media_assets.operations.partition_retirement import ArchivedDay, BatchFacts, plan_retirement
from media_assets.operations.rebuild import pending_requests
from media_assets.records import erasure
from media_assets.records.archive import batch_day, read_manifest, verify_stored_day
from media_assets.records.audit import append, audit_record
from media_assets.records.catalog import read_batch_fragment, read_catalog
from media_assets.records.manifest import all_quarantine_records, open_batch_keys
from media_assets.records.metadata import METADATA_VERSIONS
from media_assets.records.retention import apply_retention as apply_plan
from media_assets.records.retention import describe, plan_retention


class RetentionConfig(Config):
    dry_run: bool = Field(default=True, description="Only show what is due; change nothing.")
    as_of: str = Field(default="", description="Judge ages as of this ISO time (default now).")


IN_PROGRESS_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED,
                        DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
                        DagsterRunStatus.CANCELING]

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


class RetireConfig(Config):
    dry_run: bool = Field(default=False, description="Only say which batches would retire.")
    as_of: str = Field(default="", description="Judge ages as of this ISO date (default today).")


@op(pool=LIFECYCLE_POOL,
    description="Retire old batch partitions whose archive verifies: Dagster forgets them, "
                "the store and the archive keep everything.")
def retire_partitions_op(context: OpExecutionContext, config: RetireConfig,
                         storage: MediaStorage, policy: PolicyResource) -> None:
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    today = date.fromisoformat(config.as_of) if config.as_of else datetime.now(UTC).date()
    after = rules.retention.retire_partitions_after_days
    registered = context.instance.get_dynamic_partitions(BATCH_PARTITIONS)
    old = [key for key in registered
           if after is not None and (today - batch_day(key)).days >= after]
    rebuilding = {run["batch_key"] for _, request in pending_requests(store)
                  for run in request["runs"]}
    still_open = set(open_batch_keys(store))
    facts = [BatchFacts(key, batch_day(key), _contents(store, key),
                        live_runs=len(context.instance.get_run_records(RunsFilter(
                            tags={"dagster/partition": key}, statuses=IN_PROGRESS_STATUSES))),
                        open=key in still_open, pending_rebuild=key in rebuilding)
             for key in old]
    archive = {day: _archived(store, day) for day in {f.day for f in facts}}
    plans = plan_retirement(facts, archive, today, after)
    retired = [p.key for p in plans if p.retire]
    if retired and not config.dry_run:
        for key in retired:
            context.instance.delete_dynamic_partition(BATCH_PARTITIONS, key)
        append(store, [audit_record("retire_partition", "-", source=key, reason=next(
            p.why for p in plans if p.key == key), run_id=context.run.run_id,
            actor="retire_batch_partitions") for key in retired])
    context.add_output_metadata({
        "dry_run": config.dry_run, "as_of": today.isoformat(),
        "registered_before": len(registered),
        "younger_than_the_limit": len(registered) - len(old),  # not looked at further
        "retired": 0 if config.dry_run else len(retired),
        "would_retire" if config.dry_run else "retired_batches": MetadataValue.json(retired),
        "held": table([{"batch_key": p.key, "why": p.why} for p in plans if not p.retire],
                      [("batch_key", "string"), ("why", "string")]),
    })


def _contents(store, batch_key: str) -> frozenset[str]:
    rows = read_batch_fragment(store, batch_key, ["content_id"])
    return frozenset(rows["content_id"].drop_nulls()) if rows is not None else frozenset()


def _archived(store, day: date) -> ArchivedDay | None:
    manifest = read_manifest(store, day)
    if manifest is None:
        return None
    return ArchivedDay(tuple(verify_stored_day(store, day)), frozenset(manifest["content_ids"]))


@job(description="Retire batch partitions older than the policy's "
                 "retention.retire_partitions_after_days whose archive day verifies and holds "
                 "their rows, and that no run, open manifest or rebuild still needs.")
def retire_batch_partitions():
    retire_partitions_op()


@schedule(job=retire_batch_partitions, cron_schedule="30 2 * * *",
          default_status=DefaultScheduleStatus.RUNNING,
          description="Daily at 02:30 UTC, after the nightly archive.")
def daily_partition_retirement():
    return RunRequest()


lifecycle_jobs = [apply_retention, erase_content, retire_batch_partitions]
lifecycle_schedules = [daily_retention, daily_partition_retirement]
