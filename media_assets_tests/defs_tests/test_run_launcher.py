"""The instance's run launcher tells run monitoring whether a run's worker still lives, so a
run whose processes died with the machine is failed (and retried) instead of staying
STARTED and holding its lane's queue slot. Run monitoring here is Dagster's own code."""

import logging
import os
import subprocess
import sys
import time

import pytest
import yaml
from dagster import DagsterRunStatus, RunsFilter, instance_for_test
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from media_assets.defs.run_launcher import WatchedRunLauncher
from media_assets_tests.dagster_dev import REPO


@pytest.fixture
def instance():
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    with instance_for_test(overrides={"run_launcher": config["run_launcher"],
                                      "run_monitoring": config["run_monitoring"]}) as instance:
        yield instance


def started_run(instance, worker_pid: int | None) -> DagsterRun:
    run = instance.add_run(DagsterRun(job_name="process_images", run_id=f"run-{time.time_ns()}",
                                      status=DagsterRunStatus.STARTED))
    if worker_pid is not None:  # what Dagster's run worker logs first
        instance.report_engine_event(f"Started process for run (pid: {worker_pid}).", run,
                                     EngineEventData.in_process(worker_pid))
    return run


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_repos_instance_uses_the_watched_launcher_with_run_monitoring_on(instance):
    assert isinstance(instance.run_launcher, WatchedRunLauncher)
    assert instance.run_launcher.supports_check_run_worker_health
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_resume_run_attempts == 0


def test_a_run_whose_worker_lives_is_running(instance):
    health = instance.run_launcher.check_run_worker_health(started_run(instance, os.getpid()))
    assert health.status == WorkerStatus.RUNNING


def test_a_run_whose_worker_is_gone_has_failed(instance):
    pid = dead_pid()
    health = instance.run_launcher.check_run_worker_health(started_run(instance, pid))
    assert health.status == WorkerStatus.FAILED and f"pid {pid}" in (health.msg or "")


def test_a_run_whose_worker_has_not_logged_its_pid_yet_is_left_to_its_time_bound(instance):
    health = instance.run_launcher.check_run_worker_health(started_run(instance, None))
    assert health.status == WorkerStatus.RUNNING


def test_run_monitoring_fails_a_dead_run_and_leaves_a_live_one(instance):
    dead, live = started_run(instance, dead_pid()), started_run(instance, os.getpid())
    for run in (dead, live):
        [record] = instance.get_run_records(RunsFilter(run_ids=[run.run_id]))
        monitor_started_run(instance, None, record, logging.getLogger("test"))
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(live.run_id).status == DagsterRunStatus.STARTED


def test_a_run_nobody_can_watch_is_failed_once_past_its_max_runtime(instance):
    """A worker on another machine (or one that never logged its pid) cannot be judged
    here: run monitoring ends it at the `dagster/max_runtime` the sensor tagged it with."""
    from datetime import UTC, datetime, timedelta

    from dagster._core.events import DagsterEvent, DagsterEventType

    run = instance.add_run(DagsterRun(job_name="process_images", run_id=f"run-{time.time_ns()}",
                                      status=DagsterRunStatus.NOT_STARTED,
                                      tags={"dagster/max_runtime": "60"}))
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    instance.run_storage.handle_run_event(run.run_id, DagsterEvent(
        DagsterEventType.RUN_START.value, job_name=run.job_name), an_hour_ago)
    [record] = instance.get_run_records(RunsFilter(run_ids=[run.run_id]))
    assert record.dagster_run.status == DagsterRunStatus.STARTED and record.start_time
    monitor_started_run(instance, None, record, logging.getLogger("test"))
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
