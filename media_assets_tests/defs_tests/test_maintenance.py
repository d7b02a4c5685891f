"""Maintenance: lookup (job and CLI), reconciliation, compaction, and the rebuild sensor that
re-renders only the derivative whose spec changed."""

import json
from datetime import timedelta

from dagster import AssetKey, SkipReason, build_sensor_context

from media_assets.cli import main as cli
from media_assets.definitions import defs
from media_assets.defs import maintenance
from media_assets.defs.maintenance import stale_derivatives_sensor
from media_assets.records.catalog import read_index_manifest
from media_assets.samples import synth_photo, write_sample_images


def ingest_samples(install):
    write_sample_images(install.inbox, size=(320, 240))
    install.age_inbox()
    [run] = install.ingest()
    return run


def run_job(install, name, run_config=None):
    return defs.resolve_job_def(name).execute_in_process(
        instance=install.instance, resources=install.resources(), run_config=run_config)


def test_lookup_job_finds_a_file_by_name_with_its_thumbnail_and_lineage(install):
    ingest_samples(install)
    result = run_job(install, "lookup_file")  # the launchpad's prefilled example, unchanged
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = event.event_specific_data.metadata
    assert metadata["matches"].value == 1
    latest = metadata["latest"].value
    assert latest["source_name"] == "camera_rotated.jpg" and latest["status"] == "ok"
    assert "data:image/webp;base64," in metadata["thumbnail"].value
    lineage = metadata["lineage"].value  # original -> batch/run -> derivatives -> archive
    assert f"**original** `{latest['original_key']}`" in lineage
    assert f"**batch** `{latest['batch_key']}`" in lineage and latest["run_id"] in lineage
    assert "**thumbnail**" in lineage and "**archive** not yet" in lineage


def test_lookup_job_shows_a_quarantined_files_reason(install):
    ingest_samples(install)
    result = run_job(install, "lookup_file",
                     {"ops": {"find_file": {"config": {"query": "empty.jpg"}}}})
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert event.event_specific_data.metadata["quarantine_record"].value["reason"] == "empty"


def test_lookup_cli_by_content_id_prints_batch_run_and_paths(install, capsys):
    run = ingest_samples(install)
    cid = install.arrivals().filter(
        install.arrivals()["source_name"] == "web.webp")["content_id"][0]
    assert cli(["--store", str(install.root / "store"), "lookup", cid[:12]]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["source_name"] == "web.webp" and row["run_id"] == run.run_id
    assert row["original_path"].endswith(".webp")
    # the same provenance as the lookup_file job: the spec behind each hash, the tier
    provenance = row["provenance"]
    assert provenance["tier"] == "hot" and provenance["run_id"] == run.run_id
    assert all(d["spec"] and d["spec"]["spec_hash"] == d["spec_hash"]
               for d in provenance["derivatives"])
    assert cli(["--store", str(install.root / "store"), "lookup", "no-such-file"]) == 1


def test_reconciliation_passes_on_a_clean_store_and_names_orphans(install):
    ingest_samples(install)
    clean = run_job(install, "reconcile_store")
    [evaluation] = clean.get_asset_check_evaluations()
    assert evaluation.passed
    install.store.put_bytes("originals/ff/ff/" + "f" * 64 + ".jpg", b"stray")
    dirty = run_job(install, "reconcile_store")
    [evaluation] = dirty.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["orphan_originals"].value == ["originals/ff/ff/" + "f" * 64
                                                             + ".jpg"]


def test_compaction_keeps_every_row(install):
    ingest_samples(install)
    before = install.arrivals().height
    result = run_job(install, "index_catalog")
    assert read_index_manifest(install.store)["rows"] == before
    [m] = result.asset_materializations_for_node("catalog_index")
    counts = {k: v.value for k, v in m.metadata.items()}
    assert (counts["processed"], counts["quarantined"], counts["kind_image"]) == (7, 3, 7)
    assert counts["quarantined_empty"] == 1 and counts["pending_in_inbox"] == 0
    assert install.arrivals().height == before


def test_rebuild_sensor_rerenders_only_the_changed_derivative(install):
    ingest_samples(install)
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    assert isinstance(stale_derivatives_sensor(context), SkipReason)

    install.set_policy(derivatives={"preview": {"long_edge": 800, "format": "jpeg",
                                                "quality": 70}})
    result = stale_derivatives_sensor(context)
    [request] = result.run_requests
    assert set(request.asset_selection) == {AssetKey("previews"), AssetKey("catalog")}
    assert request.tags == {**request.tags, "media_assets/lane": "rebuild",
                            "media_assets/work": "bulk", "dagster/priority": "-10"}


def test_reconciliation_finds_a_missing_original_and_a_second_live_fragment(install):
    ingest_samples(install)
    rows = install.arrivals()
    row = rows.filter(rows["source_name"] == "web.webp").row(0, named=True)
    install.store.delete(row["original_key"])
    [fragment] = [k for k in install.store.list("catalog/fragments/")]
    install.store.put_bytes(fragment.replace(".parquet", "-copy.parquet"),
                            install.store.read_bytes(fragment))
    [evaluation] = run_job(install, "reconcile_store").get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["missing_originals"].value == [
        f"{row['content_id']} (web.webp)"]
    assert evaluation.metadata["duplicate_rows"].value == [
        f"{row['batch_key']}: 2 fragments"]


def test_a_spec_changed_back_and_forth_is_rebuilt_every_time(install):
    ingest_samples(install)
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    original = {"long_edge": 1440, "format": "jpeg", "quality": 80}
    smaller = {"long_edge": 800, "format": "jpeg", "quality": 70}
    keys = []
    for spec in (smaller, original, smaller):
        install.set_policy(derivatives={"preview": spec})
        [request] = stale_derivatives_sensor(context).run_requests
        keys.append(request.run_key)
        assert install.process(request.partition_key, selection=["previews", "catalog"]).success
    assert len(set(keys)) == 3  # the third change is not mistaken for the first
    assert isinstance(stale_derivatives_sensor(context), SkipReason)


def test_a_derivative_leads_back_to_its_original_spec_code_and_run(install):
    run = ingest_samples(install)
    row = install.arrivals().filter(install.arrivals()["source_name"] == "web.webp").row(
        0, named=True)
    preview = next(d for d in row["derivatives"] if d["name"] == "preview")
    result = run_job(install, "lookup_file",
                     {"ops": {"find_file": {"config": {"query": preview["key"]}}}})
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    found = event.event_specific_data.metadata["provenance"].value
    assert found["content_id (SHA-256 of the original)"] == row["content_id"]
    assert found["source_names"] == ["web.webp"] and found["run_id"] == run.run_id
    assert found["code_versions"]["previews"] == "preview-1"
    spec = next(d["spec"] for d in found["derivatives"] if d["name"] == "preview")
    assert (spec["long_edge"], spec["format"], spec["spec_hash"]) == (
        1440, "jpeg", preview["spec_hash"])


def test_temp_cleanup_removes_what_killed_runs_left_and_records_it(install):
    import os
    import time

    ingest_samples(install)
    root = install.store.root
    stale = [root / ".staging/intake-killed/.intake.tmp-1", root / "originals/ab/.x.jpg.tmp-2"]
    fresh = root / "derived/preview/.y.jpg.tmp-3"  # a live writer's, maybe: it stays
    for path in [*stale, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    for path in [*stale, stale[0].parent]:
        os.utime(path, (two_hours_ago, two_hours_ago))

    def cleanup(dry_run: bool) -> dict:
        result = run_job(install, "clean_temp_files",
                         {"ops": {"remove_stale_temp": {"config": {"dry_run": dry_run}}}})
        [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        return event.event_specific_data.metadata

    assert cleanup(dry_run=True)["removed"].value == 2 and stale[0].exists()
    metadata = cleanup(dry_run=False)
    assert (metadata["removed"].value, metadata["kept_recent"].value) == (2, 1)
    assert metadata["removed_bytes"].value == 8
    assert [r.data["path"] for r in metadata["removed_paths"].value.records] == [
        ".staging/intake-killed", "originals/ab/.x.jpg.tmp-2"]
    assert not any(path.exists() for path in stale) and fresh.exists()
    assert run_job(install, "reconcile_store").get_asset_check_evaluations()[0].passed


def test_temp_cleanup_runs_every_hour():
    schedule = defs.resolve_schedule_def("hourly_temp_cleanup")
    assert schedule.job_name == "clean_temp_files"
    assert schedule.default_status.value == "RUNNING"


def test_the_rebuild_sensor_reads_only_new_batches_until_the_specs_change(install,
                                                                         monkeypatch):
    monkeypatch.setattr(maintenance, "OVERLAP", timedelta(0))  # no re-read of recent batches
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    ingest_samples(install)
    assert "all 1 batches read" in stale_derivatives_sensor(context).skip_message
    assert "0 batches catalogued since the last tick read" in \
        stale_derivatives_sensor(context).skip_message
    synth_photo((64, 48), seed=99).save(install.inbox / "later.jpg")
    install.age_inbox()
    install.ingest()
    assert "1 batches catalogued since the last tick read" in \
        stale_derivatives_sensor(context).skip_message
    install.set_policy(derivatives={"preview": {"long_edge": 800, "format": "jpeg",
                                                "quality": 70}})
    assert len(stale_derivatives_sensor(context).run_requests) == 2  # both batches, read again
