"""`usage`: what the pipeline consumed each UTC day (CPU, wall, bytes read and written per
tier, requests, storage held), by asset, media kind and source folder, priced with the
policy's price table and held against its budgets (alerts at 80 % and 100 %, optional pause
of a folder). Today's partition is refreshed every 15 minutes so budgets act within the day."""

import calendar
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
from dagster import (
    AssetExecutionContext,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    schedule,
)

from media_assets.defs.archive import FIRST_DAY, catalog_index
from media_assets.defs.common import STORAGE_RETRY, table
from media_assets.defs.partitions import OWNERS, media_tags
from media_assets.defs.resources import AlertNotifier, MediaStorage, PolicyResource
from media_assets.operations.control import note_budgets
from media_assets.operations.usage import (
    budget_statuses,
    price_day,
    read_usage,
    stored_bytes,
    unwrapped,
)
from media_assets.records.catalog import STALE_COLUMNS, content_view, read_catalog

USAGE_DAILY_PREFIX = "usage/daily/"
# end_offset=1: today's partition exists, so the day's spend is known before it ends.
usage_days = DailyPartitionsDefinition(start_date=FIRST_DAY.isoformat(), timezone="UTC",
                                       end_offset=1)


@asset(deps=[catalog_index], partitions_def=usage_days, code_version="usage-1",
       retry_policy=STORAGE_RETRY, group_name="maintenance", kinds={"parquet", "polars"},
       owners=OWNERS, tags=media_tags("all"),
       # the schedule runs every 15 minutes; each run is due within 10 minutes
       freshness_policy=FreshnessPolicy.cron(deadline_cron="10,25,40,55 * * * *",
                                             lower_bound_delta=timedelta(minutes=15)))
def usage(context: AssetExecutionContext, storage: MediaStorage, policy: PolicyResource,
          alerts: AlertNotifier) -> MaterializeResult:
    """The day's usage records (one per file and step) aggregated by asset, media kind and
    source folder, priced (CPU-hour, GB-month per tier, per 1,000 requests), written to
    `usage/daily/date=D/usage.parquet`; budgets checked, alerts raised. Plots: cost, CPU
    hours and bytes per day."""
    store, rules = unwrapped(storage.store()), policy.for_run(storage, context.run.run_id)
    day = date.fromisoformat(context.partition_key)
    end_of_day = datetime.combine(day + timedelta(days=1), time(), UTC)
    records = read_usage(store, day.isoformat())
    view = content_view(read_catalog(store, columns=[*STALE_COLUMNS, "bytes"]))
    held = stored_bytes(view, end_of_day)
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    priced = price_day(records, held, rules.costs.prices, days_in_month)
    store.put_bytes(f"{USAGE_DAILY_PREFIX}date={day.isoformat()}/usage.parquet",
                    _parquet(priced))
    statuses = budget_statuses(priced, rules.costs)
    raised = note_budgets(store, day.isoformat(), statuses, rules.costs.pause_over_budget,
                          alerts.notifier(), datetime.now(UTC), run_id=context.run.run_id)
    for message in raised:
        context.log.warning(f"ALERT budget: {message}")
    currency = rules.costs.prices.currency
    return MaterializeResult(metadata={
        f"cost_{currency.lower()}": round(float(priced["cost"].sum()), 6),
        "cpu_hours": round(float(priced["cpu_seconds"].sum()) / 3600, 6),
        "files_processed": int(records.filter(pl.col("content_id") != "")["content_id"]
                               .n_unique()),
        "bytes_read": int(priced["bytes_read"].sum()),
        "bytes_written_hot": int(priced["bytes_written_hot"].sum()),
        "bytes_written_cold": int(priced["bytes_written_cold"].sum()),
        "stored_gb": round(float(priced["stored_bytes"].sum()) / 1e9, 6),
        "requests": int(priced["requests"].sum()),
        "by_asset": _breakdown(priced, "asset"),
        "by_media_kind": _breakdown(priced, "media_kind"),
        "by_folder": _breakdown(priced, "folder"),
        "budgets": table([{**s.__dict__, "used": f"{s.spent / s.budget:.0%}"}
                          for s in statuses], [
            ("scope", "string"), ("budget", "float"), ("spent", "float"), ("used", "string"),
            ("level", "string")]),
        "prices": MetadataValue.json(rules.costs.prices.model_dump()),
    })


def _breakdown(priced: pl.DataFrame, by: str) -> MetadataValue:
    grouped = priced.group_by(by).agg(
        pl.col("files").sum(), pl.col("cpu_seconds").sum(), pl.col("wall_seconds").sum(),
        pl.col("bytes_read").sum(), pl.col("bytes_written_hot").sum(),
        pl.col("stored_bytes").sum(), pl.col("cost").sum()).sort(by)
    # Per asset a file counts once; per kind or folder once per step that worked on it.
    files = "files" if by == "asset" else "file_steps"
    rows = [{**r, by: r[by] or "(root)", files: r["files"],
             "cpu_seconds": round(r["cpu_seconds"], 3),
             "wall_seconds": round(r["wall_seconds"], 3), "cost": round(r["cost"], 6)}
            for r in grouped.iter_rows(named=True)]
    return table(rows, [(by, "string"), (files, "int"), ("cpu_seconds", "float"),
                        ("wall_seconds", "float"), ("bytes_read", "int"),
                        ("bytes_written_hot", "int"), ("stored_bytes", "int"),
                        ("cost", "float")])


def _parquet(frame: pl.DataFrame) -> bytes:
    import io

    sink = io.BytesIO()
    frame.write_parquet(sink, compression="zstd")
    return sink.getvalue()


usage_job = define_asset_job("price_usage", selection=[usage], partitions_def=usage_days,
                             description="Aggregate and price a day's usage; check budgets.")


@schedule(job=usage_job, cron_schedule="*/15 * * * *",
          default_status=DefaultScheduleStatus.RUNNING,
          description="Today's usage every 15 minutes (budgets act within the day); "
                      "yesterday's once more just after midnight, complete.")
def usage_schedule(context: ScheduleEvaluationContext) -> list[RunRequest]:
    now = context.scheduled_execution_time.astimezone(UTC)
    days = [now.date()] + ([now.date() - timedelta(days=1)] if now.hour == 0
                           and now.minute < 15 else [])
    return [RunRequest(partition_key=d.isoformat(), run_key=f"usage-{now.isoformat()}-{d}")
            for d in days]
