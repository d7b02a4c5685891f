"""Batch partitions stay bounded: an old batch whose archive verifies leaves Dagster (its
files, rows and archive stay), a lookup still finds its files, and a rebuild registers it
again."""

from datetime import UTC, datetime

from dagster import build_sensor_context

from media_assets.definitions import defs
from media_assets.defs.maintenance import stale_derivatives_sensor
from media_assets.defs.partitions import BATCH_PARTITIONS
from media_assets.records.audit import read_audit
from media_assets_tests.defs_tests.test_archive_assets import DAY, ingest_on, materialise


def retire(install, as_of: str):
    result = defs.resolve_job_def("retire_batch_partitions").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        run_config={"ops": {"retire_partitions_op": {"config": {"as_of": as_of}}}})
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return event.event_specific_data.metadata


def test_an_old_archived_batch_retires_and_comes_back_for_a_rebuild(install, monkeypatch):
    ingest_on(install, monkeypatch, datetime(2026, 11, 20, 9, tzinfo=UTC), "morning")
    [key] = install.instance.get_dynamic_partitions(BATCH_PARTITIONS)

    held = retire(install, "2027-03-01")  # old enough, but its day is not archived
    assert held["retired"].value == 0
    assert held["held"].records[0].data == {"batch_key": key,
                                             "why": f"its day {DAY} is not archived"}
    assert materialise(install, "index_catalog").success
    assert materialise(install, "archive_catalog", DAY.isoformat()).success
    young = retire(install, "2026-12-01")
    assert (young["retired"].value, young["younger_than_the_limit"].value) == (0, 1)

    retired = retire(install, "2027-03-01")
    assert retired["retired"].value == 1 and retired["retired_batches"].value == [key]
    assert not install.instance.has_dynamic_partition(BATCH_PARTITIONS, key)
    [record] = read_audit(install.store).filter(
        read_audit(install.store)["action"] == "retire_partition").to_dicts()
    assert record["from"] == key

    # Its files are still found, from the catalog and the store.
    lookup = defs.resolve_job_def("lookup_file").execute_in_process(
        instance=install.instance, resources=install.resources())
    [event] = [e for e in lookup.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert event.event_specific_data.metadata["latest"].value["batch_key"] == key

    # A spec change makes its previews stale: the rebuild registers the partition again.
    install.set_policy(derivatives={"preview": {"long_edge": 800, "format": "jpeg",
                                                "quality": 70}})
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    result = stale_derivatives_sensor(context)
    assert {r.partition_key for r in result.run_requests} == {key}
    [add] = result.dynamic_partitions_requests
    assert list(add.partition_keys) == [key]
