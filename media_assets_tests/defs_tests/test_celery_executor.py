"""MEDIA_ASSETS_EXECUTOR=celery: a batch's steps become Celery tasks on a pool of workers.

Real broker (Redis, db 15, flushed); two `dagster-celery` worker processes started here,
each running one task at a time in its own process (`--pool=solo`: a step starts its own
decode pool, which a daemonic prefork child may not); a persistent instance (SQLite in a
temporary DAGSTER_HOME); and the real path: the inbox sensor forms the batch, `dagster job
execute` runs the lane's job with the celery executor. Skips when Redis is unreachable,
fails instead when MEDIA_ASSETS_REQUIRE_CELERY=1 (CI)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, EventRecordsFilter

from media_assets.samples import write_sample_images
from media_assets_tests.defs_tests.conftest import Installation

pytestmark = [pytest.mark.slow, pytest.mark.celery]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("MEDIA_ASSETS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
WORKERS = ("w1", "w2")


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.flushdb()
    except redis.RedisError as error:
        if os.environ.get("MEDIA_ASSETS_REQUIRE_CELERY") == "1":
            pytest.fail(f"Redis unreachable at {REDIS_URL} but MEDIA_ASSETS_REQUIRE_CELERY=1: "
                        f"{error}")
        pytest.skip(f"no Redis at {REDIS_URL} ({error}); set MEDIA_ASSETS_TEST_REDIS_URL")
    return REDIS_URL


@pytest.fixture
def install(tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(home)) as instance:
        installation = Installation(root=tmp_path, instance=instance)
        installation.set_policy(limits={"workers": 1})  # 2 cores: one decode worker a step
        installation.inbox.mkdir()
        yield installation


def celery_env(install: Installation, redis_url: str) -> dict[str, str]:
    """What both the run process and the workers get: the same instance, store and broker."""
    return {**os.environ,
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),  # `celery`
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "DAGSTER_HOME": install.instance.root_directory,
            "MEDIA_ASSETS_INBOX": str(install.inbox),
            "MEDIA_ASSETS_STORE": str(install.root / "store"),
            "MEDIA_ASSETS_POLICY": str(install.policy_path),
            "MEDIA_ASSETS_EXECUTOR": "celery",
            "MEDIA_ASSETS_CELERY_BROKER": redis_url,
            "MEDIA_ASSETS_CELERY_BACKEND": redis_url}


def wait_for_workers(redis_url: str, procs: dict[str, subprocess.Popen],
                     timeout: float = 45.0) -> None:
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app

    app = make_app(CeleryExecutor.for_cli(broker=redis_url, backend=redis_url).app_args())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        up = {host.split("@")[0] for reply in replies for host in reply}
        if set(procs) <= up:
            return
        dead = [name for name, proc in procs.items() if proc.poll() is not None]
        assert not dead, f"celery workers {dead} exited (see their logs in the tmp dir)"
        time.sleep(0.5)
    raise AssertionError(f"celery workers {list(procs)} did not answer within {timeout} s")


@pytest.fixture
def celery_workers(install, redis_url, tmp_path):
    """Two worker processes, each in its own process group, stopped at the end."""
    env = celery_env(install, redis_url)
    procs = {}
    for name in WORKERS:
        log = (tmp_path / f"{name}.log").open("w")
        procs[name] = (subprocess.Popen(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
             "-y", str(REPO / "deploy" / "celery.yaml"), "-n", name, "-l", "WARNING",
             "--", "--pool=solo", "--without-gossip", "--without-mingle"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        wait_for_workers(redis_url, procs)
        yield env
    finally:
        for proc in procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def step_workers(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """step key -> the Celery worker that ran it (dagster-celery's engine event per task)."""
    records = instance.get_event_records(EventRecordsFilter(DagsterEventType.ENGINE_EVENT))
    found = {}
    for record in records:
        entry = record.event_log_entry
        metadata = entry.dagster_event.event_specific_data.metadata if entry.dagster_event \
            else {}
        if entry.run_id == run_id and "Celery worker" in metadata:
            found[entry.step_key] = metadata["Celery worker"].value
    return found


def step_pids(instance: DagsterInstance, run_id: str) -> dict[str, int]:
    return {e.step_key: e.dagster_event.pid
            for e in instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)}


def test_a_batchs_steps_run_as_celery_tasks_spread_over_two_workers(install, celery_workers):
    write_sample_images(install.inbox, size=(320, 240))
    install.age_inbox()
    [request] = install.tick().run_requests
    assert request.job_name == "process_images"

    tags = {**request.tags, "dagster/partition": request.partition_key}
    started = time.monotonic()
    run = subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "media_assets.definitions",
         "-j", request.job_name, "--tags", json.dumps(tags)],
        cwd=REPO, env=celery_workers, capture_output=True, text=True, timeout=180)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    [dagster_run] = install.instance.get_runs()
    assert dagster_run.status == DagsterRunStatus.SUCCESS
    assert dagster_run.tags["media_assets/lane"] == "image"
    workers = step_workers(install.instance, dagster_run.run_id)
    pids = step_pids(install.instance, dagster_run.run_id)
    print(f"run took {elapsed:.1f} s; steps by worker: {workers}; pids: {pids}")

    # Every step ran in a worker, not in the run's process, and both workers took steps.
    assert set(workers) == set(pids) >= {"batch_pass", "catalog"}
    assert {host.split("@")[0] for host in workers.values()} == set(WORKERS)
    assert len(set(pids.values())) >= 2
    [run_start] = install.instance.all_logs(dagster_run.run_id, of_type=DagsterEventType.RUN_START)
    assert run_start.dagster_event.pid not in pids.values()

    rows = {r["source_name"]: (r["status"], r["reason"])
            for r in install.arrivals().iter_rows(named=True)}
    ok = {name for name, (status, _) in rows.items() if status == "ok"}
    assert ok == {"camera_rotated.jpg", "logo_alpha.png", "print_cmyk.jpg", "animation.gif",
                  "scan_16bit.tif", "web.webp", "wrong_extension.png"}
    assert rows["empty.jpg"] == ("quarantined", "empty")
    assert rows["notes.txt"] == ("quarantined", "unsupported_type")
    assert list(install.inbox.rglob("*.*")) == []
