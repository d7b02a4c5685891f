"""The per-batch job that the inbox sensor launches."""

from dagster import AssetCheckKey, AssetKey, AssetSelection, define_asset_job

from media_assets.defs.partitions import batch_partitions

BATCH_GROUPS = ("ingest", "derivatives", "catalog")

# The whole-store reconciliation is a nightly job of its own, never part of a batch run.
WHOLE_STORE_CHECK = AssetCheckKey(AssetKey("catalog"), "store_reconciles_with_catalog")

process_batch_job = define_asset_job(
    "process_batch",
    selection=AssetSelection.groups(*BATCH_GROUPS) - AssetSelection.checks(WHOLE_STORE_CHECK),
    partitions_def=batch_partitions,
    description="Everything for one batch: originals → metadata → derivatives → catalog.",
)
