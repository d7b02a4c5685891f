"""The archive as Dagster assets: a day of batches archived with its manifest, checked,
idempotent, re-archived when late data arrives, date ranges in one run, contract enforced."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from dagster import build_sensor_context

from media_assets.archive import main as verify_cli
from media_assets.definitions import defs
from media_assets.defs import archive as archive_defs
from media_assets.defs import sensors
from media_assets.records.archive import day_prefix, read_manifest
from media_assets.samples import write_sample_images

DAY = date(2026, 11, 20)


def ingest_on(install, monkeypatch, when: datetime, folder: str) -> None:
    """Drop the sample images and run the sensor and batch as if it were `when`."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return when

    monkeypatch.setattr(sensors, "datetime", Frozen)
    import os
    for path in write_sample_images(install.inbox / folder, size=(96, 72)):
        os.utime(path, (when.timestamp() - 60, when.timestamp() - 60))
    runs = install.ingest()
    assert runs and all(run.success for run in runs)


def materialise(install, job: str, partition_key: str | None = None, tags=None):
    return defs.resolve_job_def(job).execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        partition_key=partition_key, tags=tags)


@pytest.fixture
def archived(install, monkeypatch):
    ingest_on(install, monkeypatch, datetime(2026, 11, 20, 9, tzinfo=UTC), "morning")
    assert materialise(install, "index_catalog").success
    result = materialise(install, "archive_catalog", DAY.isoformat())
    assert result.success
    return install, result


def test_a_day_is_archived_with_a_manifest_that_verifies_offline(archived):
    install, result = archived
    manifest = read_manifest(install.store, DAY)
    assert manifest["rows"] == install.arrivals().height == 10
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {
        "archive_fixity", "archive_matches_catalog", "archive_schema_is_the_contract",
        "yesterday_is_archived"}
    folder = Path(install.store.describe(day_prefix(DAY)))
    assert verify_cli(["verify", str(folder)]) == 0
    provenance = (folder / "provenance.json").read_text()
    assert result.run_id in provenance


def test_archiving_the_same_day_twice_changes_no_byte(archived):
    install, _ = archived
    folder = Path(install.store.describe(day_prefix(DAY)))
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()
              and p.name != "provenance.json"}
    again = materialise(install, "archive_catalog", DAY.isoformat())
    [materialization] = again.asset_materializations_for_node("catalog_archive")
    assert materialization.metadata["changed"].value is False
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()
             and p.name != "provenance.json"}
    assert before == after


def test_late_data_for_a_day_is_re_archived_by_the_sensor(archived, monkeypatch):
    install, _ = archived
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    first = archive_defs.archive_changed_days(context)
    assert [r.partition_key for r in first.run_requests] == [DAY.isoformat()]
    context.update_cursor(first.cursor)
    assert not hasattr(archive_defs.archive_changed_days(context), "run_requests")

    ingest_on(install, monkeypatch, datetime(2026, 11, 20, 18, tzinfo=UTC), "evening")
    late = archive_defs.archive_changed_days(context)
    [request] = late.run_requests
    assert request.partition_key == DAY.isoformat()
    assert materialise(install, "archive_catalog", request.partition_key).success
    manifest = read_manifest(install.store, DAY)
    assert manifest["rows"] == 20
    folder = Path(install.store.describe(day_prefix(DAY)))
    assert len(list((folder / "history").iterdir())) == 1  # the superseded version
    # The old data file stays for readers of the old manifest, then is collected.
    assert len(list(folder.glob("part-*"))) == 2
    monkeypatch.setattr(archive_defs, "COLLECT_AFTER", timedelta(0))
    assert materialise(install, "archive_catalog", request.partition_key).success
    assert [p.name for p in folder.glob("part-*")] == [manifest["files"][0]["path"]]


def test_a_date_range_is_archived_in_one_run(archived):
    install, _ = archived
    result = materialise(install, "archive_catalog", tags={
        "dagster/asset_partition_range_start": "2026-11-18",
        "dagster/asset_partition_range_end": DAY.isoformat()})
    assert result.success
    assert [read_manifest(install.store, date(2026, 11, d))["rows"] for d in (18, 19, 20)] == [
        0, 0, 10]


def test_an_incompatible_contract_change_refuses_to_overwrite_the_archive(archived, monkeypatch):
    install, _ = archived
    import pyarrow as pa

    current = archive_defs.contract()
    retyped = current.set(current.get_field_index("bytes"), pa.field("bytes", pa.string()))
    monkeypatch.setattr(archive_defs, "contract",
                        lambda version=None: retyped if version is None else current)
    result = defs.resolve_job_def("archive_catalog").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        partition_key=DAY.isoformat(), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "changed type int64 -> string" in str(failure.event_specific_data.error.message)


def test_the_last_day_due_must_be_archived_whatever_else_was_archived(install, monkeypatch):
    """Dagster's freshness policy judges the newest archive of any day; this check asks for
    the day that is due: yesterday (UTC) once the 02:00 deadline has passed."""
    ingest_on(install, monkeypatch, datetime(2026, 11, 20, 9, tzinfo=UTC), "morning")
    assert materialise(install, "index_catalog").success

    def check_at(now: datetime):
        monkeypatch.setattr(archive_defs, "utcnow", lambda: now)
        result = materialise(install, "check_archive_is_current")
        [evaluation] = result.get_asset_check_evaluations()
        return evaluation

    before_deadline = check_at(datetime(2026, 11, 21, 1, 30, tzinfo=UTC))
    assert before_deadline.passed and before_deadline.metadata["day"].value == "2026-11-19"
    overdue = check_at(datetime(2026, 11, 21, 3, 0, tzinfo=UTC))
    assert not overdue.passed
    assert overdue.description == "2026-11-20 is not archived, yet it had 1 batches"
    assert materialise(install, "archive_catalog", DAY.isoformat()).success
    archived_now = check_at(datetime(2026, 11, 21, 3, 0, tzinfo=UTC))
    assert archived_now.passed and archived_now.description.startswith("2026-11-20 is archived")
    for asset_name in ("catalog_index", "catalog_archive", "usage"):
        spec = next(s for s in defs.resolve_all_asset_specs() if s.key.path == [asset_name])
        assert spec.freshness_policy is not None  # the cron form, at each fixed cadence
