"""`web_rendition`: fast-start H.264/AAC MP4 of each video, in an op of its own (each file takes
a slot of the `transcode` pool and minutes of CPU; its retries are its own). The other video
and audio derivatives (poster, audio preview, waveform) come from the batch pass."""


import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, asset

from media_assets.codec.rendition import render_web_rendition
from media_assets.defs.common import (
    STORAGE_RETRY,
    RenderConfig,
    batch_files,
    process_files,
    record_usage,
    spec_json,
    table,
)
from media_assets.defs.partitions import OWNERS, batch_partitions, media_tags, one_run_per_batch
from media_assets.defs.resources import DecodeWorkers, MediaStorage, PolicyResource
from media_assets.records.layout import derivative_key, spec_output_key
from media_assets.records.manifest import load_step_results, record_spec, save_step_results

# The pool that every transcode takes a slot of (limit set per instance, see the README).
TRANSCODE_POOL = "transcode"


@contextmanager
def _scratch(store: Any, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir=store.staging_dir(), prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _result(context: AssetExecutionContext, store: Any, files: dict[str, dict],
            todo: dict[str, Any], failed: set[str], started: float, spec: Any,
            **extra: Any) -> MaterializeResult:
    record_spec(store, spec)
    usage = record_usage(context, store, context.asset_key.to_user_string())
    return MaterializeResult(metadata={
        "spec": spec_json(spec),
        "files": len(files) - len(failed),
        "rendered": len(todo) - len(failed),
        "reused": len(files) - len(todo),
        "quarantined": len(failed),
        "seconds": round(time.perf_counter() - started, 3),
        **extra,
        **usage,
    })


def _missing(store: Any, files: dict[str, dict], key_for: Callable[[str], str],
             force: bool = False) -> dict[str, dict]:
    """The files whose output is missing (all of them when forced)."""
    return {cid: e for cid, e in files.items() if force or not store.exists(key_for(cid))}


@asset(deps=["originals"], partitions_def=batch_partitions, backfill_policy=one_run_per_batch,
       code_version="web_rendition-1", retry_policy=STORAGE_RETRY, group_name="derivatives",
       kinds={"mp4"}, pool=TRANSCODE_POOL, owners=OWNERS, tags=media_tags("video"))
def web_rendition(context: AssetExecutionContext, config: RenderConfig, storage: MediaStorage,
                  policy: PolicyResource, workers: DecodeWorkers) -> MaterializeResult:
    """Each video as H.264 + AAC in a fast-start MP4: long edge and frame rate capped,
    rotation baked in. Under `when_needed` a source that already fits is its own rendition:
    nothing is written, the catalog points at the original (and a purge removes both)."""
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    spec = rules.video.rendition
    files = batch_files(store, context.partition_key, ("video",), context.log)
    if spec.mode == "never":
        return _result(context, store, files, {}, set(), time.perf_counter(), spec,
                       skipped="policy: never")
    recorded = load_step_results(store, context.partition_key, "web_rendition_plans")
    todo = {cid: e for cid, e in _missing(store, files, lambda c: spec_output_key(spec, c),
                                          config.force).items()
            if config.force or not is_own_rendition(recorded.get(cid), spec)}
    started = time.perf_counter()
    plans: dict[str, dict[str, Any]] = {}
    with _scratch(store, "rendition-") as scratch:

        def keep(cid: str, plan: dict[str, Any]) -> None:
            if plan["action"] == "transcode":
                store.put_file(spec_output_key(spec, cid), scratch / f"{cid}.mp4")
            plans[cid] = {**plan, "spec_hash": spec.spec_hash}
            (scratch / f"{cid}.mp4").unlink(missing_ok=True)

        failed = process_files(
            context, store, workers, rules.limits, todo,
            lambda cid, path: (render_web_rendition, path, scratch / f"{cid}.mp4", spec),
            keep, stage="web_rendition", timeout=rules.video.timeout_seconds)
    save_step_results(store, context.partition_key, "web_rendition_plans", plans)
    recorded = load_step_results(store, context.partition_key, "web_rendition_plans")
    rows = [{"source_name": e["source_name"], **recorded.get(cid, {})}
            for cid, e in files.items() if cid not in failed]
    return _result(context, store, files, todo, failed, started, spec, renditions=table(rows, [
        ("source_name", "string"), ("action", "string"), ("reason", "string"),
        ("width", "int"), ("height", "int"), ("fps", "float"), ("rotation", "int")]))


def is_own_rendition(plan: dict[str, Any] | None, spec: Any) -> bool:
    """True when, under this spec, the original itself serves as the web rendition."""
    return bool(plan and plan.get("action") == "skip" and plan.get("spec_hash") == spec.spec_hash)


def rendition_key(plan: dict[str, Any] | None, spec: Any, cid: str, original_key: str) -> str:
    """Where a video's web rendition is: the original, or the spec's output."""
    return original_key if is_own_rendition(plan, spec) else spec_output_key(spec, cid)


def waveform_image_key(spec: Any, cid: str) -> str:
    return derivative_key(spec.name, spec.spec_hash, cid, "png")


av_assets = [web_rendition]
