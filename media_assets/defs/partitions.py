"""One dynamic partition per ingest batch (never per file)."""

from dagster import BackfillPolicy, DynamicPartitionsDefinition

BATCH_PARTITIONS = "batches"  # the name the instance keeps the batch keys under
batch_partitions = DynamicPartitionsDefinition(name=BATCH_PARTITIONS)

# Each batch is its own run: "materialise all" launches one run per batch, never one huge run.
one_run_per_batch = BackfillPolicy.multi_run(1)

LANE_TAG = "media_assets/lane"

# Who answers for the assets (shown in the asset catalog), and tags an operator filters by.
OWNERS = ["team:media-platform"]


def media_tags(*kinds: str) -> dict[str, str]:
    return {"media_assets/media": "-".join(kinds)}
