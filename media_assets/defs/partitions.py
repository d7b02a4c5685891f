"""One dynamic partition per ingest batch (never per file)."""

from dagster import BackfillPolicy, DynamicPartitionsDefinition

batch_partitions = DynamicPartitionsDefinition(name="batches")

# Each batch is its own run: "materialise all" launches one run per batch, never one huge run.
one_run_per_batch = BackfillPolicy.multi_run(1)

LANE_TAG = "media_assets/lane"
