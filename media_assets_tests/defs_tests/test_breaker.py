"""The circuit breaker: files failing for non-deterministic reasons stop a lane's new work
(said in the tick, alerted once), a single-file probe after the cool-down closes it again;
corrupt files never trip it; the state survives a restart because it lives in the store."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from media_assets.defs import sensors
from media_assets.operations.breaker import load_state, record_outcomes
from media_assets.records.audit import read_audit
from media_assets.samples import write_sample_images


@pytest.fixture
def clock(monkeypatch):
    now = {"t": datetime.now(UTC)}

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return now["t"]

    monkeypatch.setattr(sensors, "datetime", Frozen)
    return now


def test_timeouts_open_the_lane_and_a_probe_closes_it(install, clock):
    record_outcomes(install.store, "image", "20261127T000000Z-0001", ["timeout"] * 6)
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    held = install.tick()
    assert "lane image: circuit open" in held.skip_message and "10 files wait" in held.skip_message
    assert load_state(install.store, "image").status == "open"
    install.tick()
    alerts = read_audit(install.store).filter(pl.col("action") == "alert")
    assert alerts.height == 1 and "6 files in a row failed (timeout)" in alerts["reason"][0]

    clock["t"] += timedelta(seconds=301)  # cool-down over: one file goes as a probe
    [probe] = install.tick().run_requests
    assert load_state(install.store, "image").probe_batch == probe.partition_key
    assert install.process(probe.partition_key).success
    assert install.arrivals().height == 1

    clock["t"] += timedelta(seconds=5)
    [rest] = install.tick().run_requests  # the probe went through: the lane is closed
    assert load_state(install.store, "image").status == "closed"
    assert install.process(rest.partition_key).success
    assert install.arrivals().height == 10


def test_corrupt_files_never_trip_the_breaker(install):
    record_outcomes(install.store, "image", "20261127T000000Z-0001", ["corrupt"] * 20)
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    assert len(install.tick().run_requests) == 1
    assert load_state(install.store, "image").status == "closed"


def test_other_lanes_keep_flowing_while_one_is_open(install, clock):
    record_outcomes(install.store, "av", "20261127T000000Z-0001", ["worker_crashed"] * 5)
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    [request] = install.tick().run_requests
    assert request.tags["media_assets/lane"] == "image"
    assert load_state(install.store, "av").status == "open"
