"""`image_metadata`: dimensions, mode, format, ICC, EXIF (orientation, camera, capture time,
GPS presence, creator, copyright) of each stored image, read from headers in worker processes."""


import json
import time
from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, asset

from media_assets.codec.images import extract_metadata
from media_assets.defs.common import (
    STORAGE_RETRY,
    batch_files,
    process_files,
    record_usage,
    table,
)
from media_assets.defs.intake import originals
from media_assets.defs.partitions import OWNERS, batch_partitions, media_tags, one_run_per_batch
from media_assets.defs.resources import DecodeWorkers, MediaStorage, PolicyResource
from media_assets.records.layout import metadata_key

EXTRACTOR_VERSION = "image-v1"


@asset(
    deps=[originals],
    partitions_def=batch_partitions,
    backfill_policy=one_run_per_batch,
    code_version=EXTRACTOR_VERSION,
    retry_policy=STORAGE_RETRY,
    group_name="ingest",
    owners=OWNERS,
    tags=media_tags("image"),
    kinds={"python", "json"},
)
def image_metadata(
    context: AssetExecutionContext, storage: MediaStorage, policy: PolicyResource,
    workers: DecodeWorkers,
) -> MaterializeResult:
    """Technical and descriptive metadata of each image in the batch, one JSON per content."""
    store, rules, batch_key = storage.store(), policy.load(), context.partition_key
    images = batch_files(store, batch_key, ("image",), context.log)
    todo = {cid: e for cid, e in images.items()
            if not store.exists(metadata_key(cid, EXTRACTOR_VERSION))}
    started = time.perf_counter()

    def keep(cid: str, data: dict[str, Any]) -> None:
        store.put_bytes(metadata_key(cid, EXTRACTOR_VERSION),
                        json.dumps(data, sort_keys=True).encode())

    failed = process_files(
        context, store, workers, rules.limits, todo,
        lambda cid, path: (extract_metadata, path, rules.limits.max_pixels), keep,
        stage="image_metadata")
    rows = [{"source_name": e["source_name"], "content_id": cid,
             **load_metadata(store, cid)} for cid, e in images.items()]
    return MaterializeResult(metadata={
        "images": len(images),
        "extracted": len(todo) - len(failed),
        "reused": len(images) - len(todo),
        "quarantined": len(failed),
        "seconds": round(time.perf_counter() - started, 3),
        **record_usage(context, store, "image_metadata"),
        "metadata_table": table(rows, [
            ("source_name", "string"), ("format", "string"), ("width", "int"),
            ("height", "int"), ("mode", "string"), ("orientation", "int"),
            ("camera_model", "string"), ("capture_time", "string"), ("gps_present", "bool"),
        ]),
    })


def load_metadata(store: Any, cid: str, version: str = EXTRACTOR_VERSION) -> dict[str, Any]:
    key = metadata_key(cid, version)
    return json.loads(store.read_bytes(key)) if store.exists(key) else {}
