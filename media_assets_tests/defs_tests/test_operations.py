"""The operator's jobs: pause and resume ingestion, reprocess quarantined files after a
policy change, see what became stale, and verify integrity on demand."""

import json

import polars as pl
import pytest
from dagster import AssetKey

from media_assets.definitions import defs
from media_assets.records.audit import read_audit
from media_assets.samples import synth_photo, write_sample_images


def run(install, job: str, op: str | None = None, config: dict | None = None):
    run_config = {"ops": {op: {"config": config}}} if op else None
    return defs.resolve_job_def(job).execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        run_config=run_config, raise_on_error=False)


def output(result) -> dict:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {k: v.value for k, v in event.event_specific_data.metadata.items()}


def test_a_paused_inbox_waits_and_says_why_until_resumed(install):
    assert run(install, "pause_ingestion", "pause_op", {"reason": "storage migration"}).success
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    skipped = install.tick()
    assert "paused" in skipped.skip_message and "storage migration" in skipped.skip_message
    assert len(list(install.inbox.iterdir())) == 10
    assert run(install, "resume_ingestion").success
    assert len(install.tick().run_requests) == 1
    assert set(read_audit(install.store)["action"]) >= {"pause_ingestion", "resume_ingestion"}


def test_files_quarantined_by_a_limit_are_reprocessed_after_it_is_raised(install):
    install.set_policy(limits={"max_pixels": 10_000})
    synth_photo((200, 150), seed=3).save(install.inbox / "big.jpg", quality=85)
    install.age_inbox()
    [first] = install.ingest()
    assert first.success
    [row] = install.arrivals().iter_rows(named=True)
    assert (row["status"], row["reason"]) == ("quarantined", "too_many_pixels")

    install.set_policy(limits={"max_pixels": 178_000_000})
    dry = run(install, "reprocess_quarantined", "reprocess_op",
              {"reasons": ["too_many_pixels"], "why": "limit raised"})
    assert dry.success and output(dry)["matching"] == 1
    assert not hasattr(install.tick(), "run_requests")  # a dry run releases nothing

    real = run(install, "reprocess_quarantined", "reprocess_op",
               {"reasons": ["too_many_pixels"], "why": "limit raised", "dry_run": False})
    [batch] = output(real)["replay_batches"]
    [request] = install.tick().run_requests  # the sensor launches the replay batch
    assert request.partition_key == batch
    assert request.tags == {"media_assets/lane": "image", "media_assets/work": "bulk",
                            "dagster/priority": "-10",  # behind new uploads in the queue
                            "dagster/max_runtime": request.tags["dagster/max_runtime"]}
    assert install.process(batch, job_name=request.job_name).success
    replayed = install.arrivals().filter(pl.col("batch_key") == batch).row(0, named=True)
    assert (replayed["status"], replayed["source_name"]) == ("ok", "big.jpg")
    [release] = read_audit(install.store).filter(pl.col("action") == "release").to_dicts()
    assert release["to"] == batch and "limit raised" in release["reason"]


def test_the_stale_dry_run_lists_what_a_spec_change_made_stale(install):
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    install.ingest()
    assert output(run(install, "show_stale_derivatives"))["stale_or_missing"] == 0
    install.set_policy(derivatives={"preview": {"long_edge": 640, "format": "jpeg"}})
    found = output(run(install, "show_stale_derivatives"))
    assert found["stale_or_missing"] == 7 and found["batches"] == 1


def test_verify_integrity_passes_on_a_sound_store_and_names_a_damaged_original(install):
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    install.ingest()
    clean = run(install, "verify_integrity", "verify_op", {})
    assert clean.success and output(clean)["clean"] is True
    key = install.arrivals().filter(pl.col("status") == "ok")["original_key"][0]
    with install.store.local_path(key) as path:
        path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    damaged = run(install, "verify_integrity", "verify_op", {})
    assert not damaged.success
    [failure] = [e for e in damaged.all_events if e.event_type_value == "STEP_FAILURE"]
    problems = failure.event_specific_data.user_failure_data.metadata["problems"].value
    assert problems["originals_not_matching_their_content_id"] == [key]


@pytest.mark.parametrize("job", ["pause_ingestion", "reprocess_quarantined", "verify_integrity",
                                 "show_stale_derivatives", "apply_retention", "erase_content"])
def test_every_operator_job_has_a_description_for_the_launchpad(job):
    assert defs.resolve_job_def(job).description


def test_rebuild_all_re_renders_existing_derivatives_when_forced(install):
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    [run_result] = install.ingest()
    batch = run_result.dagster_run.tags["dagster/partition"]
    job = defs.resolve_job_def("process_images").get_subset(
        asset_selection={AssetKey("thumbnails"), AssetKey("catalog")})

    def rendered(force: bool) -> int:
        result = job.execute_in_process(
            partition_key=batch, instance=install.instance, resources=install.resources(),
            run_config={"ops": {"batch_pass": {"config": {"force": force}}}})
        [m] = result.asset_materializations_for_node("batch_pass")
        return m.metadata["rendered"].value

    assert rendered(force=False) == 0  # "missing": nothing is missing
    assert rendered(force=True) == 7  # "all"


def test_the_rebuild_job_asks_for_runs_that_the_rebuild_sensor_launches(install):
    from dagster import build_sensor_context

    from media_assets.defs.maintenance import stale_derivatives_sensor

    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    [first] = install.ingest()
    batch = first.dagster_run.tags["dagster/partition"]
    config = {"mode": "all", "derivatives": ["thumbnail"], "batches": [batch]}
    dry = run(install, "rebuild_derivatives", "rebuild_op", {**config, "dry_run": True})
    assert output(dry)["derivatives"] == 7 and "request" not in output(dry)

    asked = run(install, "rebuild_derivatives", "rebuild_op", config)
    assert asked.success
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    [request] = stale_derivatives_sensor(context).run_requests
    assert request.partition_key == batch
    assert set(request.asset_selection) == {AssetKey("thumbnails"), AssetKey("catalog")}
    job = defs.resolve_job_def("process_batch").get_subset(
        asset_selection=set(request.asset_selection))
    result = job.execute_in_process(partition_key=batch, instance=install.instance,
                                    resources=install.resources(), run_config=request.run_config)
    [m] = result.asset_materializations_for_node("batch_pass")
    assert m.metadata["rendered"].value == 7  # "all": re-rendered although none was missing


def test_an_unknown_rebuild_mode_fails_with_its_reason(install):
    bad = run(install, "rebuild_derivatives", "rebuild_op", {"mode": "everything"})
    assert not bad.success


def test_a_file_already_reprocessed_is_not_released_again(install):
    install.set_policy(limits={"max_pixels": 10_000})
    synth_photo((200, 150), seed=3).save(install.inbox / "big.jpg", quality=85)
    install.age_inbox()
    install.ingest()
    install.set_policy(limits={"max_pixels": 178_000_000})
    config = {"reasons": ["too_many_pixels"], "dry_run": False}
    [batch] = output(run(install, "reprocess_quarantined", "reprocess_op", config))[
        "replay_batches"]
    again = output(run(install, "reprocess_quarantined", "reprocess_op", config))
    assert again["matching"] == 0  # waiting in its open replay batch
    [request] = install.tick().run_requests
    assert install.process(batch, job_name=request.job_name).success
    assert output(run(install, "reprocess_quarantined", "reprocess_op", config))[
        "matching"] == 0  # catalogued fine now


def test_verify_integrity_walks_the_audit_trail_and_names_an_edited_record(install):
    write_sample_images(install.inbox, size=(64, 48))  # quarantines, a policy version: audited
    install.age_inbox()
    install.ingest()
    clean = run(install, "verify_integrity", "verify_op", {"rehash_originals": False})
    assert clean.success and output(clean)["audit_records"] > 0
    key = next(k for k in install.store.list("audit/") if k.endswith(".jsonl"))
    with install.store.local_path(key) as path:
        first, *rest = path.read_text().splitlines(keepends=True)
        edited = json.loads(first) | {"reason": "nothing to see"}
        path.write_text(json.dumps(edited, sort_keys=True) + "\n" + "".join(rest))
    tampered = run(install, "verify_integrity", "verify_op", {"rehash_originals": False})
    assert not tampered.success
    [failure] = [e for e in tampered.all_events if e.event_type_value == "STEP_FAILURE"]
    problems = failure.event_specific_data.user_failure_data.metadata["problems"].value
    [problem] = problems["audit trail"]
    assert problem.startswith(f"{key} line 1: its hash does not match")
