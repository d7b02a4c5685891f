"""A failed batch heals without an operator: the inbox sensor runs it again with a new run
key once its cause has cleared, and asks a person (once) when the re-runs are spent."""

import time

from media_assets.definitions import defs
from media_assets.defs.jobs import job_for_lane
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
