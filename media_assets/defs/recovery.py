"""Recovery: the catalog rebuilt from the store and the batch manifests alone (after losing
the catalog, or restoring an older one), and the batch partitions registered again (after
losing or restoring the Dagster instance)."""

import json
from datetime import UTC, datetime

from dagster import Config, MetadataValue, OpExecutionContext, job, op
from pydantic import Field

from media_assets.defs.catalog import asset_code_versions, build_rows, previous_rows
from media_assets.defs.partitions import BATCH_PARTITIONS
from media_assets.defs.resources import MediaStorage, PolicyResource
from media_assets.records.catalog import fragment_bytes, fragment_key, latest_fragments
from media_assets.records.layout import CATALOG_FRAGMENTS_PREFIX
from media_assets.records.manifest import load_manifest


class RebuildCatalogConfig(Config):
    only_missing: bool = Field(default=True, description="Rebuild only the batches that have "
                               "no catalog fragment; false: every batch.")
    dry_run: bool = Field(default=False, description="Only list the batches it would rebuild.")


def manifest_keys(store) -> list[str]:
    """Batch keys of every manifest in the store (`batches/<key>.json`)."""
    return sorted(key.removeprefix("batches/").removesuffix(".json")
                  for key in store.list("batches/")
                  if key.endswith(".json") and key.count("/") == 1)


@op(description="Rebuild catalog fragments from the batch manifests and the store; register "
                "every batch partition the instance lacks.")
def rebuild_catalog_op(context: OpExecutionContext, config: RebuildCatalogConfig,
                       storage: MediaStorage, policy: PolicyResource) -> None:
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    batches = manifest_keys(store)
    known = set(context.instance.get_dynamic_partitions(BATCH_PARTITIONS))
    unregistered = [key for key in batches if key not in known]
    have = latest_fragments(store.list(CATALOG_FRAGMENTS_PREFIX))
    todo, not_ingested = [], []
    for key in batches:
        manifest = load_manifest(store, key)
        if manifest is None or manifest.get("files") is None:
            not_ingested.append(key)  # never processed: its run (or the sensor) does it
        elif not (config.only_missing and key in have):
            todo.append(manifest)
    rows_written = 0
    if not config.dry_run:
        if unregistered:
            context.instance.add_dynamic_partitions(BATCH_PARTITIONS, unregistered)
        versions = json.dumps(asset_code_versions(), sort_keys=True)
        for manifest in todo:
            now = datetime.now(UTC)
            rows = build_rows(store, manifest, rules, previous_rows(store, manifest["batch_key"]),
                              now=now, run_id=context.run.run_id, code_versions=versions)
            store.put_bytes(fragment_key(manifest["batch_key"], now, context.run.run_id),
                            fragment_bytes(rows))
            rows_written += len(rows)
    context.add_output_metadata({
        "dry_run": config.dry_run, "manifests": len(batches),
        "batches_rebuilt": len(todo), "rows": rows_written,
        "partitions_registered": len(unregistered),
        "not_ingested": MetadataValue.json(not_ingested),
        "rebuilt": MetadataValue.json([m["batch_key"] for m in todo]),
    })
    context.log.info(f"rebuilt {len(todo)} batches ({rows_written} rows); registered "
                     f"{len(unregistered)} batch partitions")


@job(description="Rebuild the catalog from the store and the batch manifests alone (after "
                 "losing it or restoring an older backup); registers missing batch partitions. "
                 "Then run index_catalog.")
def rebuild_catalog():
    rebuild_catalog_op()
