"""`thumbnails` and `previews`: rendered together from one decode of each original, or alone
when only one of them is selected (e.g. after only its spec changed)."""


import functools
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from media_assets.defs.common import (
    STORAGE_RETRY,
    local_originals,
    require_intake,
    stored_images,
)
from media_assets.defs.intake import originals
from media_assets.defs.partitions import batch_partitions, one_run_per_batch
from media_assets.defs.resources import DecodeWorkers, MediaStorage, PolicyResource
from media_assets.media.contact_sheet import contact_sheet, data_uri
from media_assets.media.errors import Rejected
from media_assets.media.images import render_derivatives
from media_assets.media.layout import derivative_key
from media_assets.media.manifest import quarantine, quarantine_records, save_step_timings
from media_assets.media.policy import DerivativeSpec
from media_assets.media.pool import timed_call

# Asset name -> derivative name in the policy.
DERIVATIVE_ASSETS = {"thumbnails": "thumbnail", "previews": "preview"}


@multi_asset(
    specs=[
        AssetSpec("thumbnails", deps=[originals], partitions_def=batch_partitions,
                  code_version="thumbnail-1", group_name="derivatives", kinds={"webp"},
                  description="Thumbnails (policy default: 250 px long edge, WebP q80)."),
        AssetSpec("previews", deps=[originals], partitions_def=batch_partitions,
                  code_version="preview-1", group_name="derivatives", kinds={"jpeg"},
                  description="Previews (policy default: 1440 px long edge, JPEG q80)."),
    ],
    can_subset=True,
    backfill_policy=one_run_per_batch,
    retry_policy=STORAGE_RETRY,
)
def image_derivatives(
    context: AssetExecutionContext, storage: MediaStorage, policy: PolicyResource,
    workers: DecodeWorkers,
):
    """Render the selected derivatives of the batch's images, skipping existing outputs."""
    store, rules, batch_key = storage.store(), policy.load(), context.partition_key
    manifest = require_intake(store, batch_key)
    selected = [a.to_user_string() for a in context.selected_asset_keys]
    specs = [rules.derivative(DERIVATIVE_ASSETS[name]) for name in selected]
    images = stored_images(manifest, exclude=set(quarantine_records(store, batch_key)))
    todo = {cid: [s for s in specs if not store.exists(_key(s, cid))] for cid in images}
    todo = {cid: needed for cid, needed in todo.items() if needed}

    draft_edge = max(spec.long_edge for spec in rules.derivatives)
    render = functools.partial(render_derivatives, draft_edge=draft_edge)
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(dir=store.staging_dir(), prefix="derive-"))
    try:
        with local_originals(store, {cid: images[cid] for cid in todo}) as paths:
            outcomes = workers.run(
                [(cid, timed_call, (render, paths[cid], todo[cid], scratch / cid,
                                    rules.limits.max_pixels)) for cid in todo],
                rules.limits,
            )
        timings, failed = _store_outcomes(store, outcomes, images, {s.name: s for s in specs},
                                          batch_key, context.run.run_id)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    save_step_timings(store, batch_key, "derivatives", timings)
    elapsed = time.perf_counter() - started

    for name, spec in zip(selected, specs, strict=True):
        keys = [_key(spec, cid) for cid in images if cid not in failed]
        metadata: dict[str, Any] = {
            "spec": MetadataValue.json({**spec.__dict__, "spec_hash": spec.spec_hash}),
            "files": len(keys),
            "rendered": sum(spec in todo.get(cid, []) for cid in images if cid not in failed),
            "quarantined": len(failed),
            "seconds": round(elapsed, 3),
        }
        if name == "thumbnails":
            metadata["contact_sheet"] = _contact_sheet(store, keys)
        yield MaterializeResult(asset_key=name, metadata=metadata)


def _key(spec: DerivativeSpec, content_id: str) -> str:
    return derivative_key(spec.name, spec.spec_hash, content_id, spec.extension)


def _store_outcomes(store: Any, outcomes: dict, images: dict,
                    specs: dict[str, DerivativeSpec], batch_key: str,
                    run_id: str) -> tuple[dict[str, float], set[str]]:
    timings: dict[str, float] = {}
    failed: set[str] = set()
    for cid, outcome in outcomes.items():
        if outcome.ok:
            rendered, timings[cid] = outcome.value
            for name, item in rendered.items():
                store.put_file(_key(specs[name], cid), item.path)
            continue
        failed.add(cid)
        error = outcome.error
        with store.local_path(images[cid]["original_key"]) as path:
            quarantine(store, bytes_path=path, content_id=cid, batch_key=batch_key,
                       source_name=images[cid]["source_name"],
                       reason=error.reason if isinstance(error, Rejected) else "error",
                       detail=str(error), error_class=type(error).__name__,
                       stage="derivatives", run_id=run_id)
    return timings, failed


def _contact_sheet(store: Any, keys: list[str]) -> MetadataValue:
    import contextlib

    with contextlib.ExitStack() as stack:
        paths = [stack.enter_context(store.local_path(k)) for k in keys[:48] if store.exists(k)]
        sheet = contact_sheet(paths)
    if sheet is None:
        return MetadataValue.md("_no thumbnails in this batch_")
    return MetadataValue.md(f"![contact sheet]({data_uri(sheet)})")
