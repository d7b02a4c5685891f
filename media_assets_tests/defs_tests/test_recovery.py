"""Recovery: with the catalog deleted and the Dagster instance lost, the catalog is rebuilt
from the store and the batch manifests alone, row for row, and the batches are partitions
again."""

from dagster import DagsterInstance

from media_assets.definitions import defs
from media_assets.defs.partitions import batch_partitions
from media_assets.samples import write_sample_images
from media_assets.samples.av import write_sample_av

# What a rebuild cannot reproduce: when and by which run the rows were written.
WHEN_AND_BY = ["cataloged_at", "run_id"]


def rebuild(install, **config) -> dict:
    """Run the rebuild_catalog job; its output metadata."""
    result = defs.resolve_job_def("rebuild_catalog").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        run_config={"ops": {"rebuild_catalog_op": {"config": config}}})
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in output.event_specific_data.metadata.items()}


def test_a_deleted_catalog_is_rebuilt_from_the_store_and_manifests(install):
    write_sample_images(install.inbox, size=(160, 120))
    write_sample_av(install.inbox / "av", seconds=1)
    install.age_inbox()
    install.ingest()
    before = install.arrivals().drop(WHEN_AND_BY).sort("batch_key", "source_name")
    batches = set(before["batch_key"])
    assert len(batches) >= 2 and before.height > 10

    for key in list(install.store.list("catalog/")):
        install.store.delete(key)
    assert install.arrivals().height == 0
    install.instance = DagsterInstance.ephemeral()  # the instance is gone too

    assert rebuild(install)["batches_rebuilt"] == len(batches)
    after = install.arrivals().drop(WHEN_AND_BY).sort("batch_key", "source_name")
    assert after.equals(before)
    assert set(install.instance.get_dynamic_partitions(batch_partitions.name)) == batches


def test_only_missing_batches_are_rebuilt_by_default(install):
    write_sample_images(install.inbox, size=(160, 120))
    install.age_inbox()
    install.ingest()
    cataloged = install.arrivals()["cataloged_at"].to_list()
    assert rebuild(install)["batches_rebuilt"] == 0
    assert install.arrivals()["cataloged_at"].to_list() == cataloged
