"""Freshness measured per file, with a frozen clock: the oldest arrival not yet catalogued
must be younger than the policy's limit; an idle inbox is fresh."""

import os
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from media_assets.definitions import defs
from media_assets.defs import freshness
from media_assets.records.audit import read_audit
from media_assets.samples import synth_photo

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(freshness, "utcnow", lambda: NOW)


def check(install):
    result = defs.resolve_job_def("check_freshness").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(), raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def arrive(install, name: str, minutes_ago: float) -> None:
    path = install.inbox / name
    synth_photo((64, 48), seed=1).save(path, quality=80)
    stamp = (NOW - timedelta(minutes=minutes_ago)).timestamp()
    os.utime(path, (stamp, stamp))


def test_an_idle_inbox_is_fresh(install, frozen):
    evaluation = check(install)
    assert evaluation.passed and evaluation.metadata["pending_files"].value == 0


def test_a_file_waiting_longer_than_the_limit_fails_the_check_and_alerts(install, frozen):
    arrive(install, "recent.jpg", minutes_ago=2)
    assert check(install).passed
    arrive(install, "stuck.jpg", minutes_ago=25)
    evaluation = check(install)
    assert not evaluation.passed
    assert evaluation.metadata["oldest_file"].value == "stuck.jpg"
    assert evaluation.metadata["oldest_wait_minutes"].value == 25.0
    alerts = read_audit(install.store).filter(pl.col("action") == "alert")
    assert "stuck.jpg has waited 25.0 min (limit 10 min)" in alerts["reason"][0]


def test_files_in_a_batch_still_running_count_as_pending(install, frozen, monkeypatch):
    arrive(install, "queued.jpg", minutes_ago=15)
    from media_assets.defs import sensors

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW

    monkeypatch.setattr(sensors, "datetime", Frozen)
    [request] = install.tick().run_requests  # batched, its run not done yet
    assert check(install).metadata["oldest_file"].value == "queued.jpg"
    assert install.process(request.partition_key).success
    assert check(install).passed
