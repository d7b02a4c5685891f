"""The policy changed from the launchpad: propose (validated, diffed, what goes stale), apply
(a second step), and the next runs and ticks use it without a restart; catalog rows name the
version that made them; a rollback re-activates an earlier version."""

import polars as pl

from media_assets.definitions import defs
from media_assets.records.policy_versions import Activation
from media_assets.samples import write_sample_images


def run(install, job: str, op: str, config: dict):
    result = defs.resolve_job_def(job).execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        run_config={"ops": {op: {"config": config}}}, raise_on_error=False)
    outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = outputs[0].event_specific_data.metadata if outputs else {}
    return result, metadata


def failure_message(result) -> str:
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return event.event_specific_data.error.message


def test_propose_then_apply_changes_what_the_next_run_makes(install):
    install.tick()  # the file seeds the first version
    before = Activation.read(install.store)

    bad, _ = run(install, "propose_policy_change", "propose_op", {
        "patch": "batching:\n  max_files: many\n", "reason": "more", "proposed_by": "ann"})
    assert not bad.success
    assert "batching.max_files: Input should be a valid integer" in failure_message(bad)

    proposed, meta = run(install, "propose_policy_change", "propose_op", {
        "reason": "sharper thumbnails", "proposed_by": "ann"})  # the prefilled example patch
    assert proposed.success and meta["makes_stale"].value == ["thumbnail"]
    assert "quality: 85" in meta["diff"].value
    assert Activation.read(install.store) == before  # nothing changes until applied

    applied, meta = run(install, "apply_policy_change", "apply_op", {
        "proposal_id": meta["proposal_id"].value, "approved_by": "ben"})
    assert applied.success and meta["by"].value == "ann (approved by ben)"
    active = Activation.read(install.store)
    assert meta["active_version"].value == active.digest != before.digest

    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    [batch] = install.ingest()
    assert batch.success
    versions = set(install.arrivals()["policy_version"])
    assert versions == {f"1@{active.digest}"}  # rows name the version that made them

    rolled, meta = run(install, "rollback_policy", "rollback_op", {
        "version": before.digest[:8], "reason": "thumbnails too heavy", "by": "cat"})
    assert rolled.success and Activation.read(install.store).digest == before.digest
    history = [r.data["action"] for r in meta["history"].records]
    assert history[-2:] == ["policy_apply", "policy_rollback"]
    assert install.arrivals().filter(pl.col("status") == "ok").height > 0
