"""What an operator does from the launchpad, each a job with typed config: pause and resume
ingestion, reprocess quarantined files, see what a policy change made stale, and verify the
whole store, catalog and archive on demand."""

from datetime import UTC, datetime
from pathlib import PurePosixPath

import polars as pl
from dagster import (
    Config,
    Failure,
    MetadataValue,
    OpExecutionContext,
    job,
    op,
)
from pydantic import Field

from media_assets.codec.intake import hash_file
from media_assets.defs.common import table
from media_assets.defs.jobs import REBUILT_BY
from media_assets.defs.resources import MediaStorage, PolicyResource
from media_assets.operations.control import pause_ingestion, resume_ingestion
from media_assets.operations.rebuild import plan_rebuild, save_request
from media_assets.operations.replay import release, select_quarantined
from media_assets.records.archive import ARCHIVE_PREFIX, audit_anchors, verify_stored_day
from media_assets.records.audit import verify_chain
from media_assets.records.catalog import content_view, read_catalog, stale_derivatives
from media_assets.records.manifest import all_quarantine_records, claimed_inbox_names
from media_assets.records.reconcile import reconcile


class PauseConfig(Config):
    reason: str = Field(description="Why ingestion stops (shown in every sensor tick).")
    actor: str = Field(default="operator")


@op
def pause_op(context: OpExecutionContext, config: PauseConfig, storage: MediaStorage) -> None:
    state = pause_ingestion(storage.store(), config.reason, config.actor, datetime.now(UTC),
                            context.run.run_id)
    context.add_output_metadata({"paused": MetadataValue.json(state)})


@job(name="pause_ingestion",
     description="Pause ingestion: the inbox sensor forms no batches until resumed; files "
                 "wait in the inbox. No deploy, no daemon restart.")
def pause_ingestion_job():
    pause_op()


class ResumeConfig(Config):
    actor: str = Field(default="operator")


@op
def resume_op(context: OpExecutionContext, config: ResumeConfig, storage: MediaStorage) -> None:
    resumed = resume_ingestion(storage.store(), config.actor, datetime.now(UTC),
                               context.run.run_id)
    context.add_output_metadata({"resumed": resumed})
    if not resumed:
        context.log.info("ingestion was not paused")


@job(name="resume_ingestion", description="Resume ingestion after a pause.")
def resume_ingestion_job():
    resume_op()


class ReprocessConfig(Config):
    reasons: list[str] = Field(default=[], description="e.g. [too_many_pixels, timeout]; "
                                                       "empty = any reason")
    stages: list[str] = Field(default=[], description="e.g. [originals, derivatives]")
    error_classes: list[str] = Field(default=[], description="e.g. [Rejected, TimeoutError]")
    since: str = Field(default="", description="quarantined on or after YYYY-MM-DD")
    until: str = Field(default="", description="quarantined on or before YYYY-MM-DD")
    why: str = Field(default="operator replay", description="recorded with each release")
    dry_run: bool = Field(default=True, description="only list what would be released")


@op
def reprocess_op(context: OpExecutionContext, config: ReprocessConfig, storage: MediaStorage,
                 policy: PolicyResource) -> None:
    store = storage.store()
    chosen = select_quarantined(all_quarantine_records(store), reasons=config.reasons,
                                stages=config.stages, error_classes=config.error_classes,
                                since=config.since, until=config.until)
    # Contents already catalogued fine since (an earlier replay, a new arrival) or waiting in
    # an open replay batch are not released again.
    view = content_view(read_catalog(store))
    fine = set(view.filter(view["status"] == "ok")["content_id"]) if view.height else set()
    _, open_batches = claimed_inbox_names(store)
    waiting = {s.get("content_id") for m in open_batches for s in m["sources"]}
    chosen = [r for r in chosen if r["content_id"] not in fine | waiting]
    metadata = {"matching": len(chosen), "dry_run": config.dry_run,
                "files": table(chosen, [("source_name", "string"), ("content_id", "string"),
                                        ("reason", "string"), ("stage", "string"),
                                        ("quarantined_at", "string")])}
    if not config.dry_run:
        rules = policy.for_run(storage, context.run.run_id)
        batches = release(store, chosen, rules.batching, why=config.why,
                          actor="operator", run_id=context.run.run_id)
        metadata["replay_batches"] = MetadataValue.json([m["batch_key"] for m in batches])
        context.log.info(f"released {len(chosen)} files into {len(batches)} replay batches; "
                         "the inbox sensor launches them within a tick, as bulk work "
                         "(low priority, behind new uploads)")
    context.add_output_metadata(metadata)


@job(description="Reprocess quarantined files, filtered by reason, stage, error class or "
                 "date, through the normal assets (dry run by default).")
def reprocess_quarantined():
    reprocess_op()


@op
def stale_op(context: OpExecutionContext, storage: MediaStorage,
             policy: PolicyResource) -> None:
    rules = policy.for_run(storage, context.run.run_id)
    stale = stale_derivatives(read_catalog(storage.store()), rules)
    summary = stale.group_by("batch_key", "media_kind", "derivative", "state").len()
    context.add_output_metadata({
        "stale_or_missing": stale.height,
        "batches": summary["batch_key"].n_unique() if summary.height else 0,
        "by_batch": table(summary.sort("batch_key").to_dicts(), [
            ("batch_key", "string"), ("media_kind", "string"), ("derivative", "string"),
            ("state", "string"), ("len", "int")]),
    })


@job(description="Dry run of a rebuild: which derivatives the current policy's specs make "
                 "missing or stale, per batch (from the catalog's spec hashes). The "
                 "stale_derivatives_sensor rebuilds them; to re-render everything for some "
                 "batches, materialise the derivative assets with config force: true.")
def show_stale_derivatives():
    stale_op()


class RebuildConfig(Config):
    mode: str = Field(default="missing", description="missing: only missing or stale "
                      "derivatives (from the catalog's spec hashes); all: re-render every file")
    derivatives: list[str] = Field(default=[], description="e.g. [thumbnail, web_rendition]; "
                                                           "empty = every derivative")
    batches: list[str] = Field(default=[], description="batch keys; empty = every batch")
    dry_run: bool = Field(default=False, description="only show what would be rebuilt")


@op
def rebuild_op(context: OpExecutionContext, config: RebuildConfig, storage: MediaStorage,
               policy: PolicyResource) -> None:
    store = storage.store()
    try:
        plan = plan_rebuild(read_catalog(store), policy.for_run(storage, context.run.run_id),
                            mode=config.mode,
                            derivatives=config.derivatives, batches=config.batches)
    except ValueError as exc:
        raise Failure(str(exc), allow_retries=False) from exc
    runs = []
    if plan.height:
        plan = plan.with_columns(pl.struct("media_kind", "derivative").map_elements(
            lambda r: REBUILT_BY[(r["media_kind"], r["derivative"])],
            return_dtype=pl.String).alias("asset"))
        grouped = plan.group_by("batch_key", "asset").len().sort("batch_key", "asset")
        runs = [{"batch_key": r["batch_key"], "asset": r["asset"], "files": r["len"],
                 "force": config.mode == "all"} for r in grouped.iter_rows(named=True)]
    metadata = {"mode": config.mode, "dry_run": config.dry_run, "derivatives": plan.height,
                "runs": table(runs, [("batch_key", "string"), ("asset", "string"),
                                     ("files", "int"), ("force", "bool")])}
    if runs and not config.dry_run:
        metadata["request"] = save_request(store, runs, now=datetime.now(UTC),
                                           run_id=context.run.run_id)
        context.log.info(f"requested {len(runs)} rebuild runs; the stale_derivatives_sensor "
                         "launches them (bulk work: low priority, lane 'rebuild')")
    context.add_output_metadata(metadata)


@job(description="Rebuild derivatives: mode missing (only missing or stale ones) or all "
                 "(every file), for some derivatives and batches; dry_run shows the plan. "
                 "The runs are launched by the stale_derivatives_sensor, one per batch and "
                 "asset, at low priority.")
def rebuild_derivatives():
    rebuild_op()


class VerifyConfig(Config):
    rehash_originals: bool = Field(default=True, description="re-hash every original "
                                                             "(reads the whole store)")


@op
def verify_op(context: OpExecutionContext, config: VerifyConfig, storage: MediaStorage) -> None:
    store = storage.store()
    catalog = read_catalog(store)
    found = reconcile(store, catalog)
    problems: dict[str, list[str]] = {k: v for k, v in found.summary().items() if v}
    if config.rehash_originals:
        view = content_view(catalog)
        present = view.filter(view["tier"].is_not_null()) if view.height else view
        damaged = []
        for row in present.iter_rows(named=True):
            if not store.exists(row["original_key"]):
                damaged.append(f"{row['original_key']} (missing)")
                continue
            with store.local_path(row["original_key"]) as path:
                if hash_file(path) != row["content_id"]:
                    damaged.append(row["original_key"])
        if damaged:
            problems["originals_not_matching_their_content_id"] = damaged
    days = [folder.name.removeprefix("date=") for folder in day_folders_in(store)]
    for day in days:
        day_problems = verify_stored_day(store, datetime.fromisoformat(day).date())
        if day_problems:
            problems[f"archive {day}"] = day_problems
    chain = verify_chain(store, audit_anchors(store))
    if chain.problems:
        problems["audit trail"] = chain.problems
    context.add_output_metadata({
        "contents": found.checked_contents, "archive_days": len(days),
        "audit_records": chain.records, "audit_days": chain.days,
        "problems": MetadataValue.json(problems), "clean": not problems})
    if problems:
        raise Failure(f"integrity problems: {sorted(problems)}", allow_retries=False,
                      metadata={"problems": MetadataValue.json(problems)})


def day_folders_in(store):
    """Archived day folders (by their manifests) in the store."""
    manifests = [k for k in store.list(ARCHIVE_PREFIX) if k.endswith("/manifest.json")
                 and "/history/" not in k]
    return [PurePosixPath(k).parent for k in manifests]


@job(description="Verify integrity on demand: originals re-hashed, store reconciled with the "
                 "catalog, every archived day checked against its manifest, the audit trail's "
                 "chain and anchors walked. Fails when anything is off, naming it.")
def verify_integrity():
    verify_op()


operations_jobs = [pause_ingestion_job, resume_ingestion_job, reprocess_quarantined,
                   rebuild_derivatives,
                   show_stale_derivatives, verify_integrity]
