"""Checks on the video and audio derivatives of a batch. The inspections decode media, so they
run in the worker processes (both cores, a time limit each); failures name the files."""

import contextlib
from collections.abc import Callable
from typing import Any

from dagster import AssetCheckExecutionContext, AssetCheckResult, asset_check

from media_assets.codec.av_inspect import (
    inspect_audio_preview,
    inspect_rendition,
    inspect_waveform,
)
from media_assets.defs.av_derivatives import (
    rendition_key,
    waveform_image_key,
    web_rendition,
)
from media_assets.defs.checks import check_result, partition_keys
from media_assets.defs.common import batch_files
from media_assets.defs.partitions import batch_partitions
from media_assets.defs.resources import DecodeWorkers, MediaStorage, PolicyResource
from media_assets.operations.rollout import inspect_derivative
from media_assets.records.layout import spec_output_key
from media_assets.records.manifest import load_step_results
from media_assets.records.metadata import METADATA_VERSIONS, load_metadata


def _inspect_each(context: AssetCheckExecutionContext, store: Any, workers: DecodeWorkers,
                  limits: Any, kinds: tuple[str, ...], keys: Callable[..., list[str]],
                  task: Callable[..., Any], extra_args: Callable[[str], tuple[Any, ...]],
                  timeout: float | None = None, **metadata: Any) -> AssetCheckResult:
    """Run `task(*local paths of keys(cid), *extra_args(cid))` for each file in the worker
    pool; a returned string, an error or a missing output is the file's failure."""
    failures: dict[str, str] = {}
    checked = 0
    for batch_key in partition_keys(context):
        files = batch_files(store, batch_key, kinds)
        plans = load_step_results(store, batch_key, "web_rendition_plans")
        with contextlib.ExitStack() as local:  # a remote store downloads each output once
            tasks = []
            for cid, entry in files.items():
                wanted = keys(cid, entry, plans)
                if not wanted:
                    continue
                checked += 1
                missing = [k for k in wanted if not store.exists(k)]
                if missing:
                    failures[entry["source_name"]] = f"missing {missing[0]}"
                    continue
                paths = [local.enter_context(store.local_path(k)) for k in wanted]
                tasks.append((cid, task, (*paths, *extra_args(cid))))
            for cid, outcome in workers.run(tasks, limits, timeout=timeout).items():
                problem = outcome.value if outcome.ok else f"check failed: {outcome.error}"
                if problem:
                    failures[files[cid]["source_name"]] = problem
    return check_result(context, failures, checked, **metadata)


@asset_check(asset=web_rendition, partitions_def=batch_partitions,
             description="Each rendition decodes to the end, has audio iff its source has, "
                         "lasts as long as its source (±0.5 s) and respects the long edge.")
def web_rendition_plays(context: AssetCheckExecutionContext, storage: MediaStorage,
                        policy: PolicyResource, workers: DecodeWorkers) -> AssetCheckResult:
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    spec = rules.video.rendition
    return _inspect_each(
        context, store, workers, rules.limits, ("video",),
        lambda cid, entry, plans: [] if spec.mode == "never" else [
            rendition_key(plans.get(cid), spec, cid, entry["original_key"])],
        inspect_rendition,
        lambda cid: (load_metadata(store, cid, METADATA_VERSIONS["video"]), spec),
        timeout=rules.video.timeout_seconds, spec_hash=spec.spec_hash)


@asset_check(asset="audio_preview", partitions_def=batch_partitions,
             description="Each preview is AAC and as long as the spec says (or its source).")
def audio_preview_conforms(context: AssetCheckExecutionContext, storage: MediaStorage,
                           policy: PolicyResource, workers: DecodeWorkers) -> AssetCheckResult:
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    spec = rules.audio.preview
    return _inspect_each(
        context, store, workers, rules.limits, ("audio",),
        lambda cid, entry, plans: [spec_output_key(spec, cid)], inspect_audio_preview,
        lambda cid: (load_metadata(store, cid, METADATA_VERSIONS["audio"]).get(
            "duration_seconds"), spec),
        spec_hash=spec.spec_hash)


@asset_check(asset="waveform", partitions_def=batch_partitions,
             description="Each waveform has the spec's bucket count and its picture decodes.")
def waveform_conforms(context: AssetCheckExecutionContext, storage: MediaStorage,
                      policy: PolicyResource, workers: DecodeWorkers) -> AssetCheckResult:
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    spec = rules.audio.waveform
    return _inspect_each(
        context, store, workers, rules.limits, ("audio",),
        lambda cid, entry, plans: [spec_output_key(spec, cid), waveform_image_key(spec, cid)],
        inspect_waveform, lambda cid: (spec,), spec_hash=spec.spec_hash)


@asset_check(asset="poster", partitions_def=batch_partitions,
             description="Every video has a poster that decodes and fits the thumbnail spec; "
                         "audio cover art, where present, too.")
def poster_conforms(context: AssetCheckExecutionContext, storage: MediaStorage,
                    policy: PolicyResource) -> AssetCheckResult:
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    failures: dict[str, str] = {}
    checked = 0
    for batch_key in partition_keys(context):
        for cid, entry in batch_files(store, batch_key, ("video", "audio")).items():
            spec = rules.derivative_for("thumbnail", cid)  # a canary's, where one runs
            key = spec_output_key(spec, cid)
            if entry["kind"] == "audio" and not store.exists(key):
                continue  # no cover art, no thumbnail: nothing to check
            checked += 1
            problem = inspect_derivative(store, key, spec)
            if problem:
                failures[entry["source_name"]] = problem
    return check_result(context, failures, checked, spec_hash=rules.spec_stamp("thumbnail"))


av_checks = [web_rendition_plays, audio_preview_conforms, waveform_conforms, poster_conforms]
