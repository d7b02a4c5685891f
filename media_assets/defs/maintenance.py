"""Maintenance from the launchpad: look a file up, compact the catalog, reconcile the store,
remove temp files killed runs left, and rebuild derivatives whose spec changed."""

import json
from datetime import UTC, datetime, timedelta

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MetadataValue,
    OpExecutionContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset_check,
    define_asset_job,
    job,
    op,
    schedule,
    sensor,
)
from pydantic import Field

from media_assets.codec.contact_sheet import data_uri
from media_assets.core.policy import Policy
from media_assets.defs.catalog import catalog
from media_assets.defs.common import table
from media_assets.defs.jobs import OP_OF_ASSET, REBUILT_BY, process_batch_job
from media_assets.defs.partitions import BATCH_PARTITIONS, batch_partitions
from media_assets.defs.queue import queue_tags
from media_assets.defs.resources import MediaStorage, PolicyResource
from media_assets.operations.housekeeping import remove_stale_temp_files
from media_assets.operations.rebuild import pending_requests
from media_assets.operations.rollout import note_rollout
from media_assets.operations.run_limits import max_runtime_tag
from media_assets.records.archive import batch_day, day_prefix, read_manifest
from media_assets.records.catalog import (
    STALE_COLUMNS,
    content_view,
    find,
    latest_fragments,
    read_catalog,
    read_fragments,
    related_rows,
    stale_derivatives,
)
from media_assets.records.layout import CATALOG_FRAGMENTS_PREFIX
from media_assets.records.manifest import BULK, quarantine_records
from media_assets.records.provenance import provenance
from media_assets.records.reconcile import reconcile


class LookupConfig(Config):
    query: str = Field(default="camera_rotated.jpg",  # one of the sample files: one edit away
                       description="A source name (folders optional) or a content id (8 or "
                                   "more hex digits of its SHA-256).")


@op(description="Find a file by source name or content id: batch, run, derivatives, row.")
def find_file(context: OpExecutionContext, config: LookupConfig, storage: MediaStorage) -> None:
    store = storage.store()
    matches = find(store, config.query)  # reads only the index row groups that can match
    if matches.is_empty():
        context.add_output_metadata({"matches": 0})
        context.log.warning(f"nothing in the catalog matches {config.query!r}")
        return
    latest = matches.row(-1, named=True)
    metadata = {
        "matches": matches.height,
        "arrivals": table(matches.to_dicts(), [
            ("source_name", "string"), ("content_id", "string"), ("batch_key", "string"),
            ("run_id", "string"), ("status", "string"), ("reason", "string"),
            ("original_key", "string"),
        ]),
        "latest": MetadataValue.json(_jsonable(latest)),
    }
    metadata["provenance"] = MetadataValue.json(provenance(store, matches, latest))
    metadata["lineage"] = MetadataValue.md(lineage_markdown(store, latest))
    linked = linked_rows(related_rows(store, latest), latest["content_id"])
    if linked:
        metadata["linked_files"] = MetadataValue.json(linked)
    if latest["status"] != "ok":
        record = quarantine_records(store, latest["batch_key"]).get(latest["content_id"])
        metadata["quarantine_record"] = MetadataValue.json(record or {})
    thumb = next((d for d in latest["derivatives"] or [] if d["name"] == "thumbnail"), None)
    if thumb and store.exists(thumb["key"]):
        from PIL import Image

        with store.local_path(thumb["key"]) as path, Image.open(path) as im:
            metadata["thumbnail"] = MetadataValue.md(f"![thumbnail]({data_uri(im.copy())})")
    context.add_output_metadata(metadata)
    context.log.info(json.dumps(_jsonable(latest), indent=1))


def lineage_markdown(store, row: dict) -> str:
    """The path of one file from its original to the archive, each step with its key."""
    day = batch_day(row["batch_key"])
    manifest = read_manifest(store, day)
    archived = (f"`{day_prefix(day)}manifest.json`"
                + ("" if row["content_id"] in (manifest or {}).get("content_ids", [])
                   else " (the day is archived, this row not yet: the next re-archive adds it)")
                if manifest else f"not yet: day {day} is archived after midnight UTC")
    steps = [f"1. **original** `{row['original_key'] or row.get('quarantine_key') or '-'}` "
             f"(status {row['status']}{', ' + row['reason'] if row['reason'] else ''})",
             f"2. **batch** `{row['batch_key']}` (partition), run `{row['run_id']}`"]
    steps += [f"3. **{d['name']}** `{d['key']}` (spec {d['spec_hash']})"
              for d in row["derivatives"] or []]
    steps += [f"4. **catalog** row of batch `{row['batch_key']}`",
              f"5. **archive** {archived}"]
    return "\n".join(steps)


def linked_rows(arrivals: pl.DataFrame, content_id: str) -> list[dict[str, str]]:
    """The files linked to a content (a live photo's other half, sidecars), by name and id."""
    view = content_view(arrivals)
    ids = view.filter(pl.col("content_id") == content_id)["linked_content_ids"]
    if ids.is_empty() or not ids[0].len():
        return []
    partners = view.filter(pl.col("content_id").is_in(ids[0].to_list()))
    return [{"source_name": r["source_name"], "content_id": r["content_id"],
             "media_kind": r["media_kind"]} for r in partners.iter_rows(named=True)]


def _jsonable(row: dict) -> dict:
    return json.loads(json.dumps(row, default=str))


@job(description="Look a file up by source name or content id (set `query` in the launchpad).")
def lookup_file():
    find_file()


@asset_check(asset=catalog, description="The whole store agrees with the catalog: no orphan "
             "originals, no missing originals or derivatives, no duplicated arrival rows.")
def store_reconciles_with_catalog(storage: MediaStorage) -> AssetCheckResult:
    store = storage.store()
    found = reconcile(store, read_catalog(store))
    return AssetCheckResult(
        passed=found.clean, severity=AssetCheckSeverity.ERROR,
        metadata={"contents_checked": found.checked_contents,
                  **{k: MetadataValue.json(v) for k, v in found.summary().items()},
                  **{f"{k}_count": len(v) for k, v in found.__dict__.items()
                     if isinstance(v, list)}},
    )


reconcile_job = define_asset_job(
    "reconcile_store", selection=AssetSelection.checks(store_reconciles_with_catalog),
    description="Reconcile the whole store with the catalog (also runs nightly).",
)


@schedule(job=reconcile_job, cron_schedule="30 3 * * *",
          default_status=DefaultScheduleStatus.RUNNING)
def nightly_reconcile():
    return RunRequest()


@sensor(job=process_batch_job, minimum_interval_seconds=120,
        default_status=DefaultSensorStatus.RUNNING,
        description="When a derivative's spec changes in the policy, re-renders only that "
                    "derivative (and the catalog) for the batches that carry the old spec.")
def stale_derivatives_sensor(context: SensorEvaluationContext, storage: MediaStorage,
                             policy: PolicyResource) -> SensorResult | SkipReason:
    rules, store = policy.for_tick(storage), storage.store()
    for step in note_rollout(store, rules, datetime.now(UTC), actor="stale_derivatives_sensor"):
        context.log.info(f"{step.action}: {step.reason}")  # and in the audit log
    requests = _requested_rebuilds(store, rules)
    fragments = latest_fragments(store.list(CATALOG_FRAGMENTS_PREFIX))
    stale, scanned = _scan_for_stale(context, store, rules, fragments)
    if stale.is_empty() and not requests:
        return SkipReason(f"every derivative matches the policy's current specs ({scanned})")
    # The run key names the catalog state it starts from (the batch's newest fragment), so a
    # spec changed A -> B -> A -> B rebuilds every time, and each state is rebuilt once.
    stale = stale.with_columns(pl.struct("media_kind", "derivative").map_elements(
        lambda r: REBUILT_BY[(r["media_kind"], r["derivative"])], return_dtype=pl.String,
    ).alias("asset")) if stale.height else stale
    for (batch, asset_name), group in (stale.group_by(["batch_key", "asset"])
                                       if stale.height else []):
        derivative = group["derivative"][0]
        spec_hash = rules.spec_stamp(derivative)
        requests.append(_rebuild_run(
            f"rebuild:{batch}:{asset_name}:{spec_hash}:"
            f"{fragments.get(batch, '').rpartition('/')[2]}", batch, asset_name, False,
            group.height, {"media_assets/rebuild": f"{derivative}@{spec_hash}"}, rules))
    context.log.info(f"{len(requests)} rebuild runs for {stale.height} stale derivatives")
    retired = sorted({r.partition_key for r in requests if r.partition_key and not
                      context.instance.has_dynamic_partition(BATCH_PARTITIONS, r.partition_key)})
    if retired:  # a retired batch (lifecycle.retire_batch_partitions) comes back to rebuild
        context.log.info(f"registering {len(retired)} retired batch partitions again")
    return SensorResult(run_requests=sorted(requests, key=lambda r: r.run_key or ""),
                        dynamic_partitions_requests=[batch_partitions.build_add_request(retired)]
                        if retired else [])


FULL_SCAN_EVERY = timedelta(hours=1)  # also catches a rebuild that failed and stayed stale


def _scan_for_stale(context: SensorEvaluationContext, store, rules,
                    fragments: dict[str, str]) -> tuple[pl.DataFrame, str]:
    """Stale derivatives, reading only what can have changed: every batch when the specs
    changed (or hourly), otherwise only the batches catalogued since the last tick. The
    cursor keeps the specs' fingerprint and the newest fragment seen."""
    state = json.loads(context.cursor) if context.cursor else {}
    specs = "|".join(rules.spec_stamp(name) for name in SPEC_NAMES) + rules.video.rendition.mode
    newest = max((_stamp(key) for key in fragments.values()), default="")
    now = datetime.now(UTC)
    full = (state.get("specs") != specs or not state.get("full_at")
            or now - datetime.fromisoformat(state["full_at"]) >= FULL_SCAN_EVERY)
    if full:
        arrivals = read_catalog(store, columns=STALE_COLUMNS)
        scanned = f"all {len(fragments)} batches read"
    else:
        since = _minus(state.get("newest", ""), OVERLAP)  # a write racing the listing
        fresh = [key for key in fragments.values() if _stamp(key) > since]
        arrivals = read_fragments(store, fresh)
        scanned = f"{len(fresh)} batches catalogued since the last tick read"
    context.update_cursor(json.dumps({
        "specs": specs, "newest": max(newest, state.get("newest", "")),
        "full_at": now.isoformat() if full else state["full_at"]}))
    return stale_derivatives(arrivals, rules), scanned


SPEC_NAMES = ("thumbnail", "preview", "web_rendition", "audio_preview", "waveform")
OVERLAP = timedelta(minutes=2)
STAMP = "%Y%m%dT%H%M%S%fZ"  # how fragment names start (media.catalog.fragment_key)


def _stamp(fragment_key: str) -> str:
    """When a fragment was written, as its name starts."""
    return fragment_key.rpartition("/")[2].split("-", 1)[0]


def _minus(stamp: str, delta: timedelta) -> str:
    """The stamp `delta` before `stamp` ("" if none)."""
    try:
        when = datetime.strptime(stamp, STAMP).replace(tzinfo=UTC)
    except ValueError:
        return ""
    return (when - delta).strftime(STAMP)


class TempCleanupConfig(Config):
    dry_run: bool = False  # only list what would be removed


@op(description="Remove the temp files and staging folders that killed runs left in the "
                "store, once idle past the policy's limits.temp_max_age_seconds.")
def remove_stale_temp(context: OpExecutionContext, config: TempCleanupConfig,
                      storage: MediaStorage, policy: PolicyResource) -> None:
    store = storage.store()
    max_age = policy.for_run(storage, context.run.run_id).limits.temp_max_age_seconds
    sweep = remove_stale_temp_files(store.root, now=datetime.now(UTC),
                                    max_age_seconds=max_age, dry_run=config.dry_run)
    columns = [("path", "string"), ("files", "int"), ("bytes", "int"),
               ("idle_seconds", "float")]
    context.add_output_metadata({
        "dry_run": config.dry_run,
        "max_age_seconds": max_age,
        "removed": len(sweep.removed),
        "removed_bytes": sweep.removed_bytes,
        "kept_recent": len(sweep.kept),
        "removed_paths": table([item.__dict__ for item in sweep.removed[:200]], columns),
        "kept_paths": table([item.__dict__ for item in sweep.kept[:200]], columns),
    })
    verb = "would remove" if config.dry_run else "removed"
    context.log.info(f"{verb} {len(sweep.removed)} stale temp entries "
                     f"({sweep.removed_bytes} bytes); kept {len(sweep.kept)} younger than "
                     f"{max_age:g} s")


@job(description="Remove temp files that killed runs left in the store (hourly; "
                 "`dry_run: true` lists them).")
def clean_temp_files():
    remove_stale_temp()


@schedule(job=clean_temp_files, cron_schedule="45 * * * *",
          default_status=DefaultScheduleStatus.RUNNING)
def hourly_temp_cleanup():
    return RunRequest()


REQUEST_TTL = timedelta(days=7)


def _rebuild_run(run_key: str, batch: str, asset_name: str, force: bool, files: int,
                 tags: dict[str, str], rules: Policy) -> RunRequest:
    config = ({"ops": {OP_OF_ASSET.get(asset_name, asset_name): {"config": {"force": True}}}}
              if force else None)
    return RunRequest(run_key=run_key, partition_key=batch, run_config=config,
                      asset_selection=[AssetKey(asset_name), AssetKey("catalog")],
                      tags={**queue_tags("rebuild", BULK), "media_assets/files": str(files),
                            **max_runtime_tag(rules, "rebuild", files), **tags})


def _requested_rebuilds(store, rules: Policy) -> list[RunRequest]:
    """Runs operators asked for with the rebuild_derivatives job (each request once)."""
    runs = []
    for key, request in pending_requests(store):
        request_id = key.rsplit("/", 1)[-1].removesuffix(".json")
        for run in request["runs"]:
            runs.append(_rebuild_run(
                f"requested:{request_id}:{run['batch_key']}:{run['asset']}", run["batch_key"],
                run["asset"], run["force"], int(run["files"]),
                {"media_assets/rebuild": f"requested:{request_id}"}, rules))
        # Requests stay a week: the run keys keep a request re-read by a later tick (or one
        # whose tick failed half-way) from launching anything twice.
        if datetime.now(UTC) - datetime.fromisoformat(request["requested_at"]) > REQUEST_TTL:
            store.delete(key)
    return runs


maintenance_jobs = [lookup_file, reconcile_job, clean_temp_files]
maintenance_checks = [store_reconciles_with_catalog]
maintenance_schedules = [nightly_reconcile, hourly_temp_cleanup]
maintenance_sensors = [stale_derivatives_sensor]
