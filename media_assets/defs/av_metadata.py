"""`video_metadata` and `audio_metadata`: container, streams, rotation, colour, tags and cover
art of each stored video and audio file, probed with PyAV in the worker processes."""


import json
import time
from typing import Any

from dagster import AssetExecutionContext, AssetsDefinition, MaterializeResult, asset

from media_assets.codec.av_probe import probe_av
from media_assets.defs.common import (
    STORAGE_RETRY,
    batch_files,
    process_files,
    record_usage,
    table,
)
from media_assets.defs.intake import originals
from media_assets.defs.metadata import EXTRACTOR_VERSION, load_metadata
from media_assets.defs.partitions import OWNERS, batch_partitions, media_tags, one_run_per_batch
from media_assets.defs.resources import DecodeWorkers, MediaStorage, PolicyResource
from media_assets.records.layout import metadata_key

# Extractor versions name the metadata folders: a new version re-extracts into a new folder.
VIDEO_EXTRACTOR = "video-v1"
AUDIO_EXTRACTOR = "audio-v1"

VIDEO_COLUMNS = [
    ("source_name", "string"), ("container", "string"), ("duration_seconds", "float"),
    ("video_codec", "string"), ("profile", "string"), ("width", "int"), ("height", "int"),
    ("frame_rate", "float"), ("rotation", "int"), ("hdr", "string"), ("audio_codec", "string"),
    ("creation_time", "string"),
]
AUDIO_COLUMNS = [
    ("source_name", "string"), ("container", "string"), ("duration_seconds", "float"),
    ("audio_codec", "string"), ("channels", "int"), ("sample_rate", "int"),
    ("bit_rate", "int"), ("title", "string"), ("artist", "string"), ("album", "string"),
    ("has_cover_art", "bool"),
]


def summary_row(info: dict[str, Any]) -> dict[str, Any]:
    """The flat, table-friendly view of a probe (first video and first audio stream)."""
    video = (info.get("video") or [{}])[0]
    audio = (info.get("audio") or [{}])[0]
    return {
        **{k: info.get(k) for k in ("container", "duration_seconds", "title", "artist",
                                    "album", "has_cover_art", "creation_time")},
        "video_codec": video.get("codec"), "profile": video.get("profile"),
        "width": video.get("width"), "height": video.get("height"),
        "frame_rate": video.get("frame_rate"), "rotation": video.get("rotation"),
        "hdr": video.get("hdr"), "audio_codec": audio.get("codec"),
        "channels": audio.get("channels"), "sample_rate": audio.get("sample_rate"),
        "bit_rate": info.get("bit_rate"),
    }


def _metadata_asset(name: str, kind: str, version: str, columns: list[tuple[str, str]],
                    description: str) -> AssetsDefinition:
    @asset(
        name=name,
        deps=[originals],
        partitions_def=batch_partitions,
        backfill_policy=one_run_per_batch,
        code_version=version,
        retry_policy=STORAGE_RETRY,
        group_name="ingest",
        kinds={"python", "json"},
        description=description,
        owners=OWNERS,
        tags=media_tags(kind),
    )
    def _metadata(context: AssetExecutionContext, storage: MediaStorage,
                  policy: PolicyResource, workers: DecodeWorkers) -> MaterializeResult:
        store, rules = storage.store(), policy.load()
        files = batch_files(store, context.partition_key, (kind,), context.log)
        todo = {cid: e for cid, e in files.items()
                if not store.exists(metadata_key(cid, version))}
        started = time.perf_counter()

        def keep(cid: str, info: dict[str, Any]) -> None:
            store.put_bytes(metadata_key(cid, version), json.dumps(info, sort_keys=True).encode())

        failed = process_files(context, store, workers, rules.limits, todo,
                               lambda cid, path: (probe_av, path), keep, stage=name)
        rows = [{"source_name": e["source_name"],
                 **summary_row(load_metadata(store, cid, version))}
                for cid, e in files.items() if cid not in failed]
        return MaterializeResult(metadata={
            "files": len(files),
            "extracted": len(todo) - len(failed),
            "reused": len(files) - len(todo),
            "quarantined": len(failed),
            "seconds": round(time.perf_counter() - started, 3),
            **record_usage(context, store, name),
            "metadata_table": table(rows, columns),
        })

    return _metadata


video_metadata = _metadata_asset(
    "video_metadata", "video", VIDEO_EXTRACTOR, VIDEO_COLUMNS,
    "Per video: container, duration, bit rate, codecs and profiles, pixel format, size, frame "
    "rate (variable or not), rotation, colour/HDR, audio streams, creation time and tags.")
audio_metadata = _metadata_asset(
    "audio_metadata", "audio", AUDIO_EXTRACTOR, AUDIO_COLUMNS,
    "Per audio file: codec, duration, sample rate, channels, bit rate, title/artist/album "
    "tags and whether cover art is embedded.")

METADATA_VERSIONS = {"image": EXTRACTOR_VERSION, "video": VIDEO_EXTRACTOR, "audio": AUDIO_EXTRACTOR}
