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

from media_assets.codec.contact_sheet import contact_sheet, data_uri
from media_assets.codec.images import render_specs
from media_assets.defs.common import (
    STORAGE_RETRY,
    RenderConfig,
    batch_files,
    process_files,
    record_usage,
)
from media_assets.defs.intake import originals
from media_assets.defs.partitions import OWNERS, batch_partitions, media_tags, one_run_per_batch
from media_assets.defs.resources import DecodeWorkers, MediaStorage, PolicyResource
from media_assets.operations.rollout import RENDER_MS_STEP, compare
from media_assets.records.layout import spec_output_key
from media_assets.records.manifest import load_step_results, record_spec, save_step_results

# Asset name -> derivative name in the policy.
DERIVATIVE_ASSETS = {"thumbnails": "thumbnail", "previews": "preview"}


@multi_asset(
    specs=[
        AssetSpec("thumbnails", deps=[originals], partitions_def=batch_partitions,
                  code_version="thumbnail-1", group_name="derivatives", kinds={"webp"},
                  owners=OWNERS, tags=media_tags("image"),
                  description="Thumbnails (policy default: 250 px long edge, WebP q80)."),
        AssetSpec("previews", deps=[originals], partitions_def=batch_partitions,
                  code_version="preview-1", group_name="derivatives", kinds={"jpeg"},
                  owners=OWNERS, tags=media_tags("image"),
                  description="Previews (policy default: 1440 px long edge, JPEG q80)."),
    ],
    can_subset=True,
    backfill_policy=one_run_per_batch,
    retry_policy=STORAGE_RETRY,
)
def image_derivatives(
    context: AssetExecutionContext, config: RenderConfig, storage: MediaStorage,
    policy: PolicyResource, workers: DecodeWorkers,
):
    """Render the selected derivatives of the batch's images, skipping existing outputs."""
    store, rules, batch_key = storage.store(), policy.load(), context.partition_key
    selected = sorted(a.to_user_string() for a in context.selected_asset_keys)
    names = [DERIVATIVE_ASSETS[asset] for asset in selected]
    images = batch_files(store, batch_key, ("image",), context.log)
    # Each content's current spec, plus the stable one while it is in a canary.
    todo = {cid: [s for name in names for s in rules.specs_to_keep(name, cid)
                  if config.force or not store.exists(spec_output_key(s, cid))]
            for cid in images}
    todo = {cid: needed for cid, needed in todo.items() if needed}

    draft_edge = max(spec.long_edge for spec in rules.derivatives)
    render = functools.partial(render_specs, draft_edge=draft_edge)
    started = time.perf_counter()
    render_ms: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir=store.staging_dir(), prefix="derive-") as scratch:

        def keep(cid: str, rendered: list[Any]) -> None:
            """Store each file's derivatives as soon as they are rendered."""
            by_hash = {spec.spec_hash: spec for spec in todo[cid]}
            for item in rendered:
                store.put_file(spec_output_key(by_hash[item.spec_hash], cid), item.path)
                render_ms.setdefault(item.spec_hash, {})[cid] = item.elapsed_ms
            shutil.rmtree(Path(scratch) / cid, ignore_errors=True)

        failed = process_files(
            context, store, workers, rules.limits, {cid: images[cid] for cid in todo},
            lambda cid, path: (render, path, todo[cid], Path(scratch) / cid,
                               rules.limits.max_pixels),
            keep, stage="derivatives")
    elapsed = time.perf_counter() - started
    usage = record_usage(context, store, "+".join(selected))  # one decode serves both
    timings = load_step_results(store, batch_key, RENDER_MS_STEP)
    timings = {h: {**timings.get(h, {}), **ms} for h, ms in {**timings, **render_ms}.items()}
    save_step_results(store, batch_key, RENDER_MS_STEP, timings)

    for asset_name, name in zip(selected, names, strict=True):
        spec = rules.derivative(name)
        canary = rules.canaries.get(name)
        for used in (spec, canary.spec) if canary else (spec,):
            record_spec(store, used)
        done = [cid for cid in images if cid not in failed]
        keys = [spec_output_key(rules.derivative_for(name, cid), cid) for cid in done]
        metadata: dict[str, Any] = {
            "spec": MetadataValue.json({**spec.model_dump(), "spec_hash": spec.spec_hash}),
            "files": len(keys),
            "rendered": sum(1 for cid in done for s in todo.get(cid, [])
                            if s.name == name and store.exists(spec_output_key(s, cid))),
            "quarantined": len(failed),
            "seconds": round(elapsed, 3),
            **usage,
        }
        report = compare(store, rules, name, done, timings)
        if report is not None:
            metadata["canary"] = MetadataValue.json(report)
            metadata["canary_files"] = report["canary_files"]
            if report["bytes_ratio"] is not None:
                metadata["canary_bytes_ratio"] = report["bytes_ratio"]
        if asset_name == "thumbnails":
            metadata["contact_sheet"] = contact_sheet_markdown(store, keys)
        yield MaterializeResult(asset_key=asset_name, metadata=metadata)


def contact_sheet_markdown(store: Any, keys: list[str]) -> MetadataValue:
    """The batch's thumbnails as one small inline image (markdown metadata)."""
    import contextlib

    with contextlib.ExitStack() as stack:
        paths = [stack.enter_context(store.local_path(k)) for k in keys[:48] if store.exists(k)]
        sheet = contact_sheet(paths)
    if sheet is None:
        return MetadataValue.md("_no thumbnails in this batch_")
    return MetadataValue.md(f"![contact sheet]({data_uri(sheet)})")
