"""The catalog's index and its daily archive: `catalog_index` (the compacted per-content view,
unpartitioned) and `catalog_archive` (one partition per UTC day of the batch keys), kept up to
date by a schedule (yesterday, after midnight) and a sensor (late or reprocessed batches)."""

import hashlib
import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetSelection,
    BackfillPolicy,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Failure,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    asset_check,
    build_schedule_from_partitioned_job,
    define_asset_job,
    sensor,
)

from media_assets.defs.catalog import catalog
from media_assets.defs.common import STORAGE_RETRY
from media_assets.defs.partitions import OWNERS, media_tags
from media_assets.defs.resources import InboxResource, MediaStorage
from media_assets.records.archive import (
    batch_day,
    build_day,
    collect_due,
    collect_later,
    due_archive_day,
    read_manifest,
    rows_of_day,
    schema_problems,
    verify_stored_day,
    write_day,
)
from media_assets.records.audit import anchor as audit_anchor
from media_assets.records.catalog import (
    SCHEMA_VERSION,
    compact,
    content_view,
    latest_fragments,
    read_arrivals,
)
from media_assets.records.contract import contract, incompatibilities
from media_assets.records.layout import CATALOG_FRAGMENTS_PREFIX
from media_assets.records.manifest import claimed_inbox_names

ARCHIVE_VERSION = "catalog_archive-1"
ARCHIVE_DEADLINE_HOUR = 2  # UTC: the nightly archive runs at 00:15
# Superseded data files stay this long after their manifest was replaced (readers in flight).
COLLECT_AFTER = timedelta(hours=1)
FIRST_DAY = date(2026, 1, 1)
archive_days = DailyPartitionsDefinition(start_date=FIRST_DAY.isoformat(), timezone="UTC")


# Freshness where the cadence is fixed (Dagster's cron form; it judges the newest
# materialisation of any partition, hence `yesterday_is_archived` below for the archive).
INDEX_FRESHNESS = FreshnessPolicy.cron(deadline_cron="20 * * * *",  # hourly at :05
                                       lower_bound_delta=timedelta(minutes=20))
ARCHIVE_FRESHNESS = FreshnessPolicy.cron(deadline_cron=f"0 {ARCHIVE_DEADLINE_HOUR} * * *",
                                         lower_bound_delta=timedelta(hours=ARCHIVE_DEADLINE_HOUR))


@asset(deps=[catalog], code_version="catalog_index-1", retry_policy=STORAGE_RETRY,
       group_name="archive", kinds={"parquet", "polars"}, owners=OWNERS,
       tags=media_tags("all"), freshness_policy=INDEX_FRESHNESS)
def catalog_index(context: AssetExecutionContext, storage: MediaStorage,
                  inbox: InboxResource) -> MaterializeResult:
    """Every batch's catalog rows compacted into one index sorted by content id: the
    per-content view the archive and lookups read. Its metadata counts files by status,
    quarantine reason and media kind, and what is still pending: the UI plots each count
    over time (asset → Plots)."""
    store = storage.store()
    manifest = compact(store, datetime.now(UTC))
    view = content_view(read_arrivals(store))
    claimed, open_batches = claimed_inbox_names(store)
    waiting = sum(1 for entry in inbox.inbox().list_entries() if entry.name not in claimed)
    return MaterializeResult(metadata={
        "dagster/row_count": manifest["rows"],
        "contents": view.height,
        "batches": len(manifest["fragments"]),
        "index": MetadataValue.path(store.describe(manifest["index_key"])),
        "pending_in_inbox": waiting,
        "pending_in_open_batches": sum(len(m["sources"]) for m in open_batches),
        **summary_counts(view),
    })


def summary_counts(view: pl.DataFrame) -> dict[str, int]:
    """Numeric counts by status, quarantine reason and media kind (one plot each)."""
    counts = {"processed": 0, "quarantined": 0}
    if view.is_empty():
        return counts
    for status, n in view.group_by("status").len().iter_rows():
        counts["processed" if status == "ok" else str(status)] = n
    quarantined = view.filter(pl.col("status") == "quarantined")
    for reason, n in quarantined.group_by("reason").len().iter_rows():
        counts[f"quarantined_{reason}"] = n
    ok = view.filter(pl.col("status") == "ok")
    for kind, n in ok.group_by("media_kind").len().iter_rows():
        counts[f"kind_{kind}"] = n
    return counts


@asset(deps=[catalog_index], partitions_def=archive_days, code_version=ARCHIVE_VERSION,
       backfill_policy=BackfillPolicy.single_run(), retry_policy=STORAGE_RETRY,
       group_name="archive", kinds={"parquet"}, owners=OWNERS, tags=media_tags("all"),
       freshness_policy=ARCHIVE_FRESHNESS)
def catalog_archive(context: AssetExecutionContext, storage: MediaStorage) -> None:
    """Day D: the catalog rows of the batches whose key carries D, as deterministic Parquet
    plus a manifest (rows, bytes, SHA-256 per file, schema, content ids), verifiable offline
    with `python -m media_assets.archive verify`. A date range runs as one run."""
    store = storage.store()
    collected = collect_due(store, datetime.now(UTC), COLLECT_AFTER)
    if collected:
        context.log.info(f"collected {len(collected)} superseded archive files")
    arrivals = read_arrivals(store)
    for key in context.partition_keys:
        day = date.fromisoformat(key)
        previous = read_manifest(store, day)
        if previous is not None:
            problems = incompatibilities(contract(previous.get("schema_version") or "1"),
                                         contract())
            if problems:
                raise Failure(f"archive {day}: the catalog contract changed incompatibly since "
                              f"the day was archived ({'; '.join(problems)}); bump the schema "
                              "version and migrate the archive instead of overwriting it",
                              allow_retries=False)
        rows = rows_of_day(arrivals, day)
        try:
            files, manifest = build_day(rows, day)
        except ValueError as exc:
            raise Failure(f"archive {day}: rows do not fit the catalog contract: {exc}",
                          allow_retries=False) from exc
        audit_head = audit_anchor(store, day)  # the audit chain's head, anchored outside it
        if audit_head is not None:
            manifest["audit_head"] = audit_head
        provenance = {"run_id": context.run.run_id, "created_at": datetime.now(UTC).isoformat(),
                      "code_version": ARCHIVE_VERSION, "schema_version": SCHEMA_VERSION}
        written = write_day(store, day, files, manifest, provenance)
        collect_later(store, day, written["superseded_files"], datetime.now(UTC))
        context.add_asset_metadata(partition_key=key, metadata={
            "dagster/row_count": manifest["rows"],
            "files": len(manifest["files"]),
            "bytes": sum(f["bytes"] for f in manifest["files"]),
            "contents": len(manifest["content_ids"]),
            "changed": written["changed"],
            "audit_head": (f"{audit_head['objects']} objects, {audit_head['hash']}"
                           if audit_head else "no audit records that day"),
            "manifest": MetadataValue.path(store.describe(f"archive/catalog/date={key}/"
                                                          "manifest.json")),
        })


archive_job = define_asset_job("archive_catalog", selection=[catalog_archive],
                               partitions_def=archive_days,
                               description="Archive days of the catalog (pick the days).")
index_job = define_asset_job("index_catalog", selection=[catalog_index],
                             description="Compact the catalog into its per-content index.")

hourly_index = ScheduleDefinition(job=index_job, cron_schedule="5 * * * *",
                                  default_status=DefaultScheduleStatus.RUNNING,
                                  description="Compact the catalog and record its counts hourly.")
nightly_archive = build_schedule_from_partitioned_job(
    archive_job, hour_of_day=0, minute_of_hour=15, default_status=DefaultScheduleStatus.RUNNING)


@sensor(job=archive_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Re-archives the past days whose batches changed (late data, reprocessing).")
def archive_changed_days(context: SensorEvaluationContext,
                         storage: MediaStorage) -> SensorResult | SkipReason:
    store = storage.store()
    today = datetime.now(UTC).date()
    fragments = latest_fragments(store.list(CATALOG_FRAGMENTS_PREFIX))
    by_day: dict[str, list[str]] = {}
    for batch, key in fragments.items():
        day = batch_day(batch)
        if FIRST_DAY <= day < today:  # today's partition exists once the day is over
            by_day.setdefault(day.isoformat(), []).append(key)
    tokens = {day: hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]
              for day, keys in by_day.items()}
    seen = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(day for day, token in tokens.items() if seen.get(day) != token)
    cursor = json.dumps(tokens, sort_keys=True)
    if not changed:
        return SkipReason("no archived day has new or changed batches")
    return SensorResult(
        run_requests=[RunRequest(partition_key=day, run_key=f"archive:{day}:{tokens[day]}")
                      for day in changed],
        cursor=cursor)


def _days(context: AssetCheckExecutionContext) -> list[date]:
    keys = context.partition_keys if context.has_partition_key_range else [context.partition_key]
    return [date.fromisoformat(k) for k in keys]


def _result(failures: dict[str, str], checked: int, **extra) -> AssetCheckResult:
    return AssetCheckResult(passed=not failures, severity=AssetCheckSeverity.ERROR,
                            metadata={"days_checked": checked,
                                      "failures": MetadataValue.json(failures), **extra})


@asset_check(asset=catalog_archive, partitions_def=archive_days,
             description="Every data file still has the size, SHA-256, rows and schema its "
                         "manifest records.")
def archive_fixity(context: AssetCheckExecutionContext, storage: MediaStorage) -> AssetCheckResult:
    store, failures = storage.store(), {}
    for day in _days(context):
        problems = verify_stored_day(store, day)
        if problems:
            failures[day.isoformat()] = "; ".join(problems)
    return _result(failures, len(_days(context)))


@asset_check(asset=catalog_archive, partitions_def=archive_days,
             description="The archived row count equals the catalog's rows for the day.")
def archive_matches_catalog(context: AssetCheckExecutionContext,
                            storage: MediaStorage) -> AssetCheckResult:
    store, failures = storage.store(), {}
    arrivals = read_arrivals(store)
    for day in _days(context):
        manifest = read_manifest(store, day)
        expected = rows_of_day(arrivals, day).height
        archived = manifest["rows"] if manifest else None
        if archived != expected:
            failures[day.isoformat()] = f"archive has {archived} rows, catalog {expected}"
    return _result(failures, len(_days(context)))


@asset_check(asset=catalog_archive, partitions_def=archive_days,
             description="Each day's schema is the catalog contract (or an older version "
                         "that newer readers still read).")
def archive_schema_is_the_contract(context: AssetCheckExecutionContext,
                                   storage: MediaStorage) -> AssetCheckResult:
    store, failures = storage.store(), {}
    for day in _days(context):
        manifest = read_manifest(store, day)
        problems = schema_problems(manifest) if manifest else ["no manifest"]
        if problems:
            failures[day.isoformat()] = "; ".join(problems)
    return _result(failures, len(_days(context)), contract_version=SCHEMA_VERSION)


def utcnow() -> datetime:
    """The check's clock (tests set it)."""
    return datetime.now(UTC)


@asset_check(asset=catalog_archive,
             description=f"The last day due (yesterday, UTC, from {ARCHIVE_DEADLINE_HOUR:02d}:00) "
                         "is archived if it had batches. The freshness policy alone would "
                         "pass on re-archiving any old day.")
def yesterday_is_archived(context: AssetCheckExecutionContext,
                          storage: MediaStorage) -> AssetCheckResult:
    store, day = storage.store(), due_archive_day(utcnow(), ARCHIVE_DEADLINE_HOUR)
    batches = [b for b in latest_fragments(store.list(CATALOG_FRAGMENTS_PREFIX))
               if batch_day(b) == day]
    manifest = read_manifest(store, day)
    if manifest is not None:
        said = f"{day} is archived: {manifest['rows']} rows from {len(batches)} batches"
    elif batches:
        said = f"{day} is not archived, yet it had {len(batches)} batches"
    else:
        said = f"{day} had no batches: nothing to archive"
    return AssetCheckResult(passed=manifest is not None or not batches,
                            severity=AssetCheckSeverity.ERROR, description=said,
                            metadata={"day": day.isoformat(), "batches": len(batches),
                                      "archived": manifest is not None})


archive_check_job = define_asset_job(
    "check_archive_is_current", selection=AssetSelection.checks(yesterday_is_archived),
    description="Is the last day due archived?")
archive_check_schedule = ScheduleDefinition(
    job=archive_check_job, cron_schedule=f"5 {ARCHIVE_DEADLINE_HOUR} * * *",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Just after the archive's deadline: yesterday must be archived.")

archive_assets = [catalog_index, catalog_archive]
archive_checks = [archive_fixity, archive_matches_catalog, archive_schema_is_the_contract,
                  yesterday_is_archived]
archive_jobs = [archive_job, index_job, archive_check_job]
archive_schedules = [nightly_archive, hourly_index, archive_check_schedule]
archive_sensors = [archive_changed_days]
