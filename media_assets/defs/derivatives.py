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
    RenderConfig,
    batch_files,
    process_files,
    record_usage,
)
from media_assets.defs.intake import originals
from media_assets.defs.partitions import OWNERS, batch_partitions, media_tags, one_run_per_batch
from media_assets.defs.resources import DecodeWorkers, MediaStorage, PolicyResource
from media_assets.media.contact_sheet import contact_sheet, data_uri
from media_assets.media.images import render_derivatives
from media_assets.media.layout import spec_output_key
from media_assets.media.manifest import record_spec

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
    selected = [a.to_user_string() for a in context.selected_asset_keys]
    specs = [rules.derivative(DERIVATIVE_ASSETS[name]) for name in selected]
    images = batch_files(store, batch_key, ("image",), context.log)
    todo = {cid: [s for s in specs if config.force or not store.exists(spec_output_key(s, cid))]
            for cid in images}
    todo = {cid: needed for cid, needed in todo.items() if needed}

    draft_edge = max(spec.long_edge for spec in rules.derivatives)
    render = functools.partial(render_derivatives, draft_edge=draft_edge)
    started = time.perf_counter()
    by_name = {spec.name: spec for spec in specs}
    with tempfile.TemporaryDirectory(dir=store.staging_dir(), prefix="derive-") as scratch:

        def keep(cid: str, rendered: dict[str, Any]) -> None:
            """Store each file's derivatives as soon as they are rendered."""
            for name, item in rendered.items():
                store.put_file(spec_output_key(by_name[name], cid), item.path)
            shutil.rmtree(Path(scratch) / cid, ignore_errors=True)

        failed = process_files(
            context, store, workers, rules.limits, {cid: images[cid] for cid in todo},
            lambda cid, path: (render, path, todo[cid], Path(scratch) / cid,
                               rules.limits.max_pixels),
            keep, stage="derivatives")
    elapsed = time.perf_counter() - started
    usage = record_usage(context, store, "+".join(sorted(selected)))  # one decode serves both

    for name, spec in zip(selected, specs, strict=True):
        record_spec(store, spec)
        keys = [spec_output_key(spec, cid) for cid in images if cid not in failed]
        metadata: dict[str, Any] = {
            "spec": MetadataValue.json({**spec.__dict__, "spec_hash": spec.spec_hash}),
            "files": len(keys),
            "rendered": sum(spec in todo.get(cid, []) and store.exists(spec_output_key(spec, cid))
                            for cid in images if cid not in failed),
            "quarantined": len(failed),
            "seconds": round(elapsed, 3),
            **usage,
        }
        if name == "thumbnails":
            metadata["contact_sheet"] = contact_sheet_markdown(store, keys)
        yield MaterializeResult(asset_key=name, metadata=metadata)


def contact_sheet_markdown(store: Any, keys: list[str]) -> MetadataValue:
    """The batch's thumbnails as one small inline image (markdown metadata)."""
    import contextlib

    with contextlib.ExitStack() as stack:
        paths = [stack.enter_context(store.local_path(k)) for k in keys[:48] if store.exists(k)]
        sheet = contact_sheet(paths)
    if sheet is None:
        return MetadataValue.md("_no thumbnails in this batch_")
    return MetadataValue.md(f"![contact sheet]({data_uri(sheet)})")
