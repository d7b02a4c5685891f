"""Every alert reaches the operator's webhook (a real HTTP receiver on 127.0.0.1): the circuit
breaker, the disk guard, the freshness check, a failing blocking check and any failed run."""

import os
from datetime import UTC, datetime, timedelta

import pytest
from dagster import build_run_status_sensor_context

from media_assets.definitions import defs
from media_assets.defs import checks, freshness
from media_assets.defs.alerting import run_failure_alerts
from media_assets.operations.breaker import record_outcomes
from media_assets.samples import synth_photo, write_sample_images
from media_assets.storage import LocalObjectStore
from media_assets_tests.webhook import webhook_receiver


@pytest.fixture
def hook(install):
    with webhook_receiver() as receiver:
        install.webhook_url = receiver.url
        yield receiver


def test_no_webhook_is_called_unless_one_is_configured(install):
    assert install.resources()["alerts"].notifier() is None


def test_the_circuit_breaker_alerts_when_a_lane_opens(install, hook):
    record_outcomes(install.store, "image", "20261127T000000Z-0001", ["timeout"] * 6)
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    install.tick()
    install.tick()
    [body] = hook.bodies  # once, not every tick
    assert body["media_assets"]["source"] == "breaker:image"
    assert "6 files in a row failed (timeout)" in body["text"]


def test_the_disk_guard_alerts_once_and_says_when_it_clears(install, hook, monkeypatch):
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    monkeypatch.setattr(LocalObjectStore, "free_bytes", lambda self: 200 * 1024**2)
    install.tick()
    install.tick()
    monkeypatch.setattr(LocalObjectStore, "free_bytes", lambda self: 50 * 1024**3)
    install.tick()
    assert [(b["media_assets"]["source"], b["media_assets"]["severity"]) for b in hook.bodies] \
        == [("disk_guard", "error"), ("disk_guard", "resolved")]


def test_an_overdue_arrival_alerts(install, hook, monkeypatch):
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(freshness, "utcnow", lambda: now)
    path = install.inbox / "stuck.jpg"
    synth_photo((64, 48), seed=1).save(path)
    stamp = (now - timedelta(minutes=25)).timestamp()
    os.utime(path, (stamp, stamp))
    defs.resolve_job_def("check_freshness").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(), raise_on_error=False)
    assert hook.sources() == ["freshness"]
    assert "stuck.jpg has waited 25.0 min" in hook.bodies[0]["text"]


def test_a_failing_blocking_check_alerts(install, hook, monkeypatch):
    def unreachable(store, key):
        raise OSError(f"store unreachable reading {key}")  # an injected storage fault

    monkeypatch.setattr(checks, "require_intake", unreachable)
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    [request] = install.tick().run_requests
    result = defs.resolve_job_def(request.job_name).execute_in_process(
        partition_key=request.partition_key, instance=install.instance,
        resources=install.resources(), raise_on_error=False)
    assert not result.success  # blocking: the batch's derivatives wait
    assert "store_is_usable" in hook.sources()[0]
    assert "store unreachable" in hook.bodies[0]["text"]


def test_a_failed_run_alerts_with_its_job_and_error(install, hook):
    result = defs.resolve_job_def("rebuild_derivatives").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(), raise_on_error=False,
        run_config={"ops": {"rebuild_op": {"config": {"mode": "everything"}}}})
    assert not result.success
    context = build_run_status_sensor_context(
        sensor_name="run_failure_alerts", dagster_event=result.get_run_failure_event(),
        dagster_instance=install.instance, dagster_run=result.dagster_run,
        resources=install.sensor_resources()).for_run_failure()
    run_failure_alerts(context)
    [body] = hook.bodies
    assert body["media_assets"]["source"] == "run_failure"
    assert body["media_assets"]["details"]["job"] == "rebuild_derivatives"
    assert body["media_assets"]["details"]["run_id"] == result.run_id
