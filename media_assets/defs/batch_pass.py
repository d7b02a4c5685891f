"""The batch pass: `originals`, the metadata assets and the image derivatives of one batch,
made by one op in one pass per file (`operations.batch_pass`). Each asset keeps its own key,
lineage and one materialisation per batch; `can_subset` lets a lane's job select its assets
and lets one derivative be rebuilt alone."""

from collections.abc import Iterator
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from media_assets.codec.derivatives import REGISTRY, Derivative
from media_assets.codec.file_pass import METADATA_STAGES
from media_assets.core.types import FileEntry
from media_assets.defs.common import (
    STORAGE_RETRY,
    RenderConfig,
    SheetTile,
    contact_sheet_markdown,
    log_file,
    record_usage,
    spec_json,
    table,
)
from media_assets.defs.partitions import OWNERS, batch_partitions, media_tags, one_run_per_batch
from media_assets.defs.resources import (
    DecodeWorkers,
    InboxResource,
    MediaStorage,
    PolicyResource,
)
from media_assets.operations.batch_pass import BatchNotReady, PassReport, Selection, run_pass
from media_assets.operations.rollout import RENDER_MS_STEP, compare
from media_assets.records.layout import spec_output_key
from media_assets.records.manifest import load_step_results, record_spec
from media_assets.records.metadata import METADATA_VERSIONS, load_metadata

INTAKE_VERSION = "originals-1"
PASS_DERIVATIVES = [d for d in REGISTRY if d.in_pass]

IMAGE_METADATA_COLUMNS = [
    ("source_name", "string"), ("format", "string"), ("width", "int"), ("height", "int"),
    ("mode", "string"), ("orientation", "int"), ("camera_model", "string"),
    ("capture_time", "string"), ("gps_present", "bool"),
]
VIDEO_METADATA_COLUMNS = [
    ("source_name", "string"), ("container", "string"), ("duration_seconds", "float"),
    ("video_codec", "string"), ("profile", "string"), ("width", "int"), ("height", "int"),
    ("frame_rate", "float"), ("rotation", "int"), ("hdr", "string"), ("audio_codec", "string"),
    ("creation_time", "string"),
]
AUDIO_METADATA_COLUMNS = [
    ("source_name", "string"), ("container", "string"), ("duration_seconds", "float"),
    ("audio_codec", "string"), ("channels", "int"), ("sample_rate", "int"),
    ("bit_rate", "int"), ("title", "string"), ("artist", "string"), ("album", "string"),
    ("has_cover_art", "bool"),
]
METADATA_COLUMNS = {"image": IMAGE_METADATA_COLUMNS, "video": VIDEO_METADATA_COLUMNS,
                    "audio": AUDIO_METADATA_COLUMNS}

_common = {"partitions_def": batch_partitions, "owners": OWNERS}
_specs = [
    AssetSpec("originals", code_version=INTAKE_VERSION, group_name="ingest",
              kinds={"python", "file"}, tags=media_tags("all"),
              description="Validated originals of one batch in the content-addressed store "
                          "(key = SHA-256).", **_common),
    AssetSpec("image_metadata", deps=["originals"], code_version=METADATA_VERSIONS["image"],
              group_name="ingest", kinds={"python", "json"}, tags=media_tags("image"),
              description="Technical and descriptive metadata of each image in the batch "
                          "(dimensions, mode, ICC, EXIF), one JSON per content.", **_common),
    AssetSpec("video_metadata", deps=["originals"], code_version=METADATA_VERSIONS["video"],
              group_name="ingest", kinds={"python", "json"}, tags=media_tags("video"),
              description="Per video: container, duration, bit rate, codecs and profiles, "
                          "pixel format, size, frame rate (variable or not), rotation, "
                          "colour/HDR, audio streams, creation time and tags.", **_common),
    AssetSpec("audio_metadata", deps=["originals"], code_version=METADATA_VERSIONS["audio"],
              group_name="ingest", kinds={"python", "json"}, tags=media_tags("audio"),
              description="Per audio file: codec, duration, sample rate, channels, bit rate, "
                          "title/artist/album tags and whether cover art is embedded.",
              **_common),
    *(AssetSpec(d.asset, deps=["originals"], code_version=d.code_version,
                group_name="derivatives", kinds=set(d.formats), tags=media_tags(*d.media_kinds),
                description=d.description, **_common) for d in PASS_DERIVATIVES),
]
METADATA_ASSETS = {stage: kind for kind, stage in METADATA_STAGES.items()}


@multi_asset(specs=_specs, can_subset=True, backfill_policy=one_run_per_batch,
             retry_policy=STORAGE_RETRY, name="batch_pass")
def batch_pass(context: AssetExecutionContext, config: RenderConfig, storage: MediaStorage,
               inbox: InboxResource, policy: PolicyResource,
               workers: DecodeWorkers) -> Iterator[MaterializeResult]:
    """One pass per file: read once, check, extract metadata, decode once for every
    derivative, store as each file finishes."""
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    selection = Selection(
        originals="originals" in selected,
        metadata_kinds=frozenset(METADATA_ASSETS[a] for a in selected if a in METADATA_ASSETS),
        derivative_assets=tuple(d.asset for d in PASS_DERIVATIVES if d.asset in selected),
        force=config.force)
    try:
        report = run_pass(store, inbox.inbox(), rules, workers, batch_key=context.partition_key,
                          run_id=context.run.run_id, selection=selection,
                          log=lambda level, event, cid, name, **fields: log_file(
                              context, level, event, cid, name, **fields))
    except BatchNotReady as exc:
        raise Failure(str(exc), allow_retries=False) from exc
    if report.skipped_purged:
        name, why = report.skipped_purged[0]
        context.log.warning(f"{len(report.skipped_purged)} originals were purged by retention "
                            f"and are skipped (e.g. {name}: {why})")
    usage = record_usage(context, store, "+".join(sorted(selected)),
                         [e.to_record() for e in report.entries])
    if selection.originals:
        yield MaterializeResult(asset_key="originals", metadata={
            **_intake_summary(report), **usage})
    for stage, kind in METADATA_ASSETS.items():
        if stage in selected:
            yield MaterializeResult(asset_key=stage,
                                    metadata=_metadata_summary(store, report, stage, kind))
    for derivative in PASS_DERIVATIVES:
        if derivative.asset in selected:
            yield MaterializeResult(asset_key=derivative.asset, metadata={
                **_derivative_summary(store, rules, report, derivative), **usage})
    _nothing_to_do(context, report)


def _asset_kinds() -> dict[str, tuple[str, ...]]:
    """Every per-batch asset that works on files of some kinds, and those kinds."""
    return {**{stage: (kind,) for stage, kind in METADATA_ASSETS.items()},
            **{d.asset: d.media_kinds for d in REGISTRY}}


def _nothing_to_do(context: AssetExecutionContext, report: PassReport) -> None:
    """A lane's run materialises only its lane's assets. For every other per-batch asset
    that has no stored file of its kinds in this batch there is nothing to make: record that
    as an empty materialisation of the batch's partition, so partition health says complete
    for it and shows as missing only what really is. A batch that does hold such files
    (a file in an unexpected lane) is left missing: the truth."""
    in_run = {k.to_user_string() for k in context.run.asset_selection
              or context.job_def.asset_layer.selected_asset_keys}
    if "originals" not in in_run:
        return  # a rebuild of some derivatives: the batch's partitions were settled at intake
    stored_kinds = {e.kind for e in report.entries if e.stored}
    for asset_name, kinds in _asset_kinds().items():
        if asset_name in in_run or stored_kinds & set(kinds):
            continue
        context.log_event(AssetMaterialization(
            asset_key=asset_name, partition=context.partition_key,
            description=f"nothing to make: the batch holds no {' or '.join(kinds)} files",
            metadata={"files": 0, "lane_job": context.job_name}))


def _intake_summary(report: PassReport) -> dict[str, Any]:
    files = report.entries
    stored = [f for f in files if f.stored]
    quarantined = [f for f in files if f.status == "quarantined"]
    metadata: dict[str, Any] = {
        "files": len(files),
        "stored": sum(not f.duplicate for f in stored),
        "duplicates": sum(f.duplicate for f in stored),
        "quarantined": len(quarantined),
        "bytes": sum(f.bytes or 0 for f in files),
        "seconds": round(report.seconds, 3),
        "files_per_second": round(len(files) / report.seconds, 2) if report.seconds else None,
        "quarantine_reasons": MetadataValue.json({f.source_name: f.reason for f in quarantined}),
        # A worker death the machine may have caused is retried alone before it is judged.
        "retried_alone": len(report.retried),
        "retried_alone_then_ok": sum(status == "ok" for _, status in report.retried.values()),
        # Status and reason first: an operator looks for the quarantined rows.
        "file_table": table([f.to_record() for f in files], [
            ("source_name", "string"), ("status", "string"), ("reason", "string"),
            ("retried", "string"),
            ("kind", "string"), ("type", "string"), ("width", "int"), ("height", "int"),
            ("duration_seconds", "float"), ("bytes", "int"), ("content_id", "string"),
        ]),
    }
    if quarantined:  # the rows an operator looks for, on their own
        metadata["quarantined_files"] = table([f.to_record() for f in quarantined], [
            ("source_name", "string"), ("reason", "string"), ("detail", "string"),
            ("kind", "string"), ("bytes", "int"), ("content_id", "string")])
    if report.left_in_inbox:
        metadata["left_in_inbox"] = MetadataValue.json(report.left_in_inbox)
    return metadata


def _metadata_summary(store: Any, report: PassReport, stage: str,
                      kind: str) -> dict[str, Any]:
    tally = report.tallies[stage]
    files = _stored_of_kind(report.entries, kind)
    rows = []
    for entry in files:
        cid = entry.content_id or ""
        if cid in report.failed:
            continue
        data = report.metadata.get(cid) or load_metadata(store, cid, METADATA_VERSIONS[kind])
        rows.append({"source_name": entry.source_name, **_flat(data, kind)})
    return {
        "files": len(files),
        "extracted": tally.made,
        "reused": tally.reused,
        "quarantined": tally.quarantined,
        "seconds": round(report.seconds, 3),
        "metadata_table": table(rows, METADATA_COLUMNS[kind]),
    }


def _derivative_summary(store: Any, rules: Any, report: PassReport,
                        derivative: Derivative) -> dict[str, Any]:
    name, tally = derivative.name, report.tallies[derivative.asset]
    spec = rules.spec(name)
    canary = rules.canaries.get(name)
    for used in (spec, canary.spec) if canary else (spec,):
        record_spec(store, used)
    done = sorted({e.content_id for kind in derivative.media_kinds
                   for e in _stored_of_kind(report.entries, kind)
                   if e.content_id and e.content_id not in report.failed})
    keys = [spec_output_key(derivative.current_spec(rules, cid), cid) for cid in done]
    metadata: dict[str, Any] = {
        "spec": spec_json(spec),
        "files": len(keys),
        "rendered": tally.made,
        "reused": tally.reused,
        "quarantined": tally.quarantined,
        "seconds": round(report.seconds, 3),
    }
    timings = load_step_results(store, report.batch_key, RENDER_MS_STEP) if canary else {}
    comparison = compare(store, rules, name, done, timings) if canary else None
    if comparison is not None:
        metadata["canary"] = MetadataValue.json(comparison)
        metadata["canary_files"] = comparison["canary_files"]
        if comparison["bytes_ratio"] is not None:
            metadata["canary_bytes_ratio"] = comparison["bytes_ratio"]
    if derivative.asset in ("thumbnails", "poster"):
        metadata["contact_sheet"] = contact_sheet_markdown(
            store, report.batch_key, derivative.asset, _sheet_tiles(report, derivative, rules))
    return metadata


def _sheet_tiles(report: PassReport, derivative: Derivative, rules: Any) -> list[SheetTile]:
    """Every file of the batch this derivative is for, in batch order: a stored file with its
    output, a quarantined one (or one of no known kind, on the thumbnails sheet) with why."""
    tiles, seen = [], set()
    for entry in report.entries:
        cid = entry.content_id or ""
        mine = entry.kind in derivative.media_kinds or (
            entry.kind is None and derivative.asset == "thumbnails")
        if not mine or (cid and cid in seen):
            continue
        seen.add(cid)
        if entry.stored and cid not in report.failed:
            tiles.append(SheetTile(entry.source_name,
                                   spec_output_key(derivative.current_spec(rules, cid), cid)))
        elif cid in report.failed:  # stored, then refused by a later stage
            tiles.append(SheetTile(entry.source_name, None, "refused after intake"))
        else:
            tiles.append(SheetTile(entry.source_name, None, entry.reason or entry.status))
    return tiles


def _stored_of_kind(entries: list[FileEntry], kind: str) -> list[FileEntry]:
    """The batch's stored files of a kind, each content once."""
    seen: set[str] = set()
    files = []
    for entry in entries:
        if entry.stored and entry.kind == kind and entry.content_id not in seen:
            seen.add(entry.content_id or "")
            files.append(entry)
    return files


def _flat(data: dict[str, Any], kind: str) -> dict[str, Any]:
    """The table-friendly view of a file's metadata (first video and audio stream)."""
    if kind == "image":
        return data
    video = (data.get("video") or [{}])[0]
    audio = (data.get("audio") or [{}])[0]
    return {
        **{k: data.get(k) for k in ("container", "duration_seconds", "title", "artist",
                                    "album", "has_cover_art", "creation_time")},
        "video_codec": video.get("codec"), "profile": video.get("profile"),
        "width": video.get("width"), "height": video.get("height"),
        "frame_rate": video.get("frame_rate"), "rotation": video.get("rotation"),
        "hdr": video.get("hdr"), "audio_codec": audio.get("codec"),
        "channels": audio.get("channels"), "sample_rate": audio.get("sample_rate"),
        "bit_rate": data.get("bit_rate"),
    }


PASS_ASSET_KEYS = [AssetKey(spec.key.path) for spec in _specs]
