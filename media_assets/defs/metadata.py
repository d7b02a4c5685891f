"""`image_metadata`: dimensions, mode, format, ICC, EXIF (orientation, camera, capture time,
GPS presence, creator, copyright) of each stored image, read from headers in worker processes."""


import json
import time
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, asset

from media_assets.defs.common import (
    STORAGE_RETRY,
    local_originals,
    quarantine_failure,
    require_intake,
    stored_images,
    table,
)
from media_assets.defs.intake import originals
from media_assets.defs.partitions import batch_partitions, one_run_per_batch
from media_assets.defs.resources import DecodeWorkers, MediaStorage, PolicyResource
from media_assets.media.images import extract_metadata
from media_assets.media.layout import metadata_key
from media_assets.media.manifest import quarantine_records, save_step_timings
from media_assets.media.pool import Outcome, timed_call

EXTRACTOR_VERSION = "image-v1"


@asset(
    deps=[originals],
    partitions_def=batch_partitions,
    backfill_policy=one_run_per_batch,
    code_version=EXTRACTOR_VERSION,
    retry_policy=STORAGE_RETRY,
    group_name="ingest",
    kinds={"python", "json"},
)
def image_metadata(
    context: AssetExecutionContext, storage: MediaStorage, policy: PolicyResource,
    workers: DecodeWorkers,
) -> MaterializeResult:
    """Technical and descriptive metadata of each image in the batch, one JSON per content."""
    store, rules, batch_key = storage.store(), policy.load(), context.partition_key
    manifest = require_intake(store, batch_key)
    images = stored_images(manifest, exclude=set(quarantine_records(store, batch_key)))
    todo = {cid: e for cid, e in images.items()
            if not store.exists(metadata_key(cid, EXTRACTOR_VERSION))}
    started = time.perf_counter()
    timings: dict[str, float] = {}
    failed: set[str] = set()

    def store_outcome(cid: str, outcome: Outcome) -> None:
        if outcome.ok:
            data, timings[cid] = outcome.value
            store.put_bytes(metadata_key(cid, EXTRACTOR_VERSION),
                            json.dumps(data, sort_keys=True).encode())
            return
        failed.add(cid)
        quarantine_failure(store, todo[cid], outcome.error, batch_key=batch_key,
                           stage="image_metadata", run_id=context.run.run_id)

    with local_originals(store, todo) as paths:
        workers.run(
            [(cid, timed_call, (extract_metadata, paths[cid], rules.limits.max_pixels))
             for cid in todo],
            rules.limits, on_outcome=store_outcome,
        )
    save_step_timings(store, batch_key, "image_metadata", timings)
    rows = [{"source_name": e["source_name"], "content_id": cid,
             **load_metadata(store, cid)} for cid, e in images.items()]
    return MaterializeResult(metadata={
        "images": len(images),
        "extracted": len(todo) - len(failed),
        "reused": len(images) - len(todo),
        "quarantined": len(failed),
        "seconds": round(time.perf_counter() - started, 3),
        "metadata_table": table(rows, [
            ("source_name", "string"), ("format", "string"), ("width", "int"),
            ("height", "int"), ("mode", "string"), ("orientation", "int"),
            ("camera_model", "string"), ("capture_time", "string"), ("gps_present", "bool"),
        ]),
    })


def load_metadata(store: Any, cid: str) -> dict[str, Any]:
    key = metadata_key(cid, EXTRACTOR_VERSION)
    return json.loads(store.read_bytes(key)) if store.exists(key) else {}
