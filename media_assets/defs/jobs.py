"""Jobs: the per-batch chain the sensor launches, plus maintenance jobs for the launchpad."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from media_assets.defs.partitions import batch_partitions

BATCH_GROUPS = ("ingest", "derivatives", "catalog")

process_batch_job = define_asset_job(
    "process_batch",
    selection=AssetSelection.groups(*BATCH_GROUPS),
    partitions_def=batch_partitions,
    description="Everything for one batch: originals → metadata → derivatives → catalog.",
)
