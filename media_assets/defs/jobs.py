"""The per-batch jobs that the inbox sensor launches: one per lane, so a batch of photos runs
only the image assets and a batch of videos only the video/audio ones."""

from dagster import AssetCheckKey, AssetKey, AssetSelection, define_asset_job

from media_assets.codec.derivatives import REGISTRY, rebuilt_by
from media_assets.defs.partitions import batch_partitions

BATCH_GROUPS = ("ingest", "derivatives", "catalog")

# Whole-store checks run on their own schedules, never as part of a batch run.
WHOLE_STORE_CHECKS = (AssetSelection.checks(
    AssetCheckKey(AssetKey("catalog"), "store_reconciles_with_catalog"),
    AssetCheckKey(AssetKey("catalog"), "arrivals_are_catalogued_in_time")))

IMAGE_ASSETS = ("originals", "image_metadata", "thumbnails", "previews", "catalog")
AV_ASSETS = ("originals", "video_metadata", "audio_metadata", "poster", "web_rendition",
             "audio_preview", "waveform", "catalog")

_everything = AssetSelection.groups(*BATCH_GROUPS) - WHOLE_STORE_CHECKS

process_batch_job = define_asset_job(
    "process_batch",
    selection=_everything,
    partitions_def=batch_partitions,
    description="Everything for one batch of any media (the heavy lane, and by hand): "
                "originals → metadata → derivatives → catalog.",
)
process_images_job = define_asset_job(
    "process_images",
    selection=AssetSelection.assets(*IMAGE_ASSETS) - WHOLE_STORE_CHECKS,
    partitions_def=batch_partitions,
    description="A batch of images: originals → image metadata → thumbnails, previews → catalog.",
)
process_av_job = define_asset_job(
    "process_av",
    selection=AssetSelection.assets(*AV_ASSETS) - WHOLE_STORE_CHECKS,
    partitions_def=batch_partitions,
    description="A batch of videos and audio: originals → metadata → poster, web rendition, "
                "audio preview, waveform → catalog.",
)

LANE_JOBS = {"image": process_images_job, "av": process_av_job, "heavy": process_batch_job}


def job_for_lane(lane: str) -> str:
    return LANE_JOBS.get(lane, process_batch_job).name


# (media kind, derivative name in the policy) -> the asset that renders it, and that asset's op.
REBUILT_BY = rebuilt_by()
OP_OF_ASSET = {d.asset: "batch_pass" for d in REGISTRY if d.in_pass}
