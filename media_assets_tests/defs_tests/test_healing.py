"""A failed batch heals without an operator: the inbox sensor runs it again with a new run
key once its cause has cleared, and asks a person (once) when the re-runs are spent."""

import time

from dagster import build_sensor_context

from media_assets.definitions import defs
from media_assets.defs.jobs import job_for_lane
from media_assets.defs.sensors import run_facts
from media_assets.operations.healing import HEAL_ATTEMPT_TAG
from media_assets.records.audit import read_audit
from media_assets_tests.codec_tests.test_file_pass import photo


def fail_run(install, partition_key: str) -> None:
    """The batch's run, failed by a policy file broken while it runs."""
    good = install.policy_path.read_text()
    install.policy_path.write_text("batching: [unclosed\n")
    try:
        result = defs.resolve_job_def(job_for_lane("image")).execute_in_process(
            partition_key=partition_key, instance=install.instance,
            resources=install.resources(), raise_on_error=False)
    finally:
        install.policy_path.write_text(good)
    assert not result.success


def test_a_batch_whose_run_failed_runs_again_by_itself_with_a_new_run_key(install):
    install.set_policy(healing={"backoff_seconds": 0.01})
    for i in range(2):
        install.drop(f"{i}.jpg", photo(1200 + 16 * i))
    [first] = install.tick().run_requests
    fail_run(install, first.partition_key)
    time.sleep(0.05)
    [facts] = run_facts(build_sensor_context(instance=install.instance), first.partition_key)
    assert "invalid policy" in facts.error  # the tick says why the batch runs again

    healed = install.tick()

    [again] = healed.run_requests
    assert (again.run_key, again.partition_key) == (f"{first.run_key}/heal-1", first.run_key)
    assert again.tags[HEAL_ATTEMPT_TAG] == "1"
    assert install.process(again.partition_key).success
    assert sorted(install.arrivals()["status"]) == ["ok", "ok"]
    assert install.inbox_names() == []
    assert not getattr(install.tick(), "run_requests", [])  # healed: nothing more to do


def test_when_the_re_runs_are_spent_the_tick_says_so_and_alerts_once(install):
    install.set_policy(healing={"max_attempts": 0})
    install.drop("a.jpg", photo())
    [first] = install.tick().run_requests
    fail_run(install, first.partition_key)

    ticks = [install.tick(), install.tick()]

    for tick in ticks:
        assert not getattr(tick, "run_requests", [])
        assert f"batch {first.partition_key}: 1 runs failed, 0 re-runs spent" in (
            tick.skip_message or "")
    alerts = [r for r in read_audit(install.store).to_dicts() if r["action"] == "alert"
              and r["from"] == f"batch:{first.partition_key}"]
    assert len(alerts) == 1
    assert install.inbox_names() == ["a.jpg"]  # nothing lost: it waits for a person


def test_a_policy_file_broken_mid_run_cannot_fail_the_run(install, monkeypatch):
    """The run pinned its policy version at its first read; the later steps use it."""
    import media_assets.defs.batch_pass as batch_pass_module

    real_pass = batch_pass_module.run_pass

    def pass_then_break_the_policy(*args, **kwargs):
        report = real_pass(*args, **kwargs)
        install.policy_path.write_text("batching: [unclosed\n")
        return report

    monkeypatch.setattr(batch_pass_module, "run_pass", pass_then_break_the_policy)
    install.drop("a.jpg", photo())
    [run] = install.tick().run_requests
    assert install.process(run.partition_key).success  # catalog and checks came after
    assert list(install.arrivals()["status"]) == ["ok"]


def test_while_the_policy_file_is_invalid_ticks_use_the_last_valid_version_and_say_why(
        install):
    install.tick()  # a valid read: kept as the last valid version
    install.policy_path.write_text(install.policy_path.read_text().replace(
        "max_files: 2000", "max_files: many"))
    install.drop("a.jpg", photo())

    ticks = [install.tick(), install.tick()]

    [run] = ticks[0].run_requests  # ingestion goes on
    assert run.partition_key
    assert "batching.max_files" in ticks[1].skip_message
    assert "policy file invalid, using the last valid version" in ticks[1].skip_message
    alerts = [r for r in read_audit(install.store).to_dicts()
              if r["action"] == "alert" and r["from"] == "policy"]
    assert len(alerts) == 1 and str(install.policy_path) in alerts[0]["reason"]
