"""Chaos under the real daemon: decode workers killed mid-batch, the policy file broken
mid-run, the store short of space and given room again. Every file must end `ok`, as in an
undisturbed run, with no manual step; the alerts say what happened."""

import os
import signal
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from media_assets.records.audit import read_audit
from media_assets.records.catalog import read_arrivals
from media_assets.records.manifest import load_manifest
from media_assets.storage import LocalObjectStore
from media_assets_tests.chaos_tools import busy, decode_workers, drop, photo_bytes
from media_assets_tests.dagster_dev import REPO, dagster_dev, wait_for

pytestmark = pytest.mark.slow

PHOTOS, LATE_PHOTOS = 80, 10


class WorkerKiller(threading.Thread):
    """kill -9 a busy decode worker every `every` seconds, `times` times (the OOM killer)."""

    def __init__(self, times: int, every: float) -> None:
        super().__init__(daemon=True)
        self.times, self.every, self.killed = times, every, 0

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while self.killed < self.times and time.monotonic() < deadline:
            workers = busy(decode_workers())
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                self.killed += 1
                time.sleep(self.every)
            else:
                time.sleep(0.1)


def write_policy(path: Path, **sections: dict) -> None:
    data = yaml.safe_load((REPO / "policy.yaml").read_text())
    data["healing"] = {**data["healing"], "backoff_seconds": 1}
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    path.write_text(yaml.safe_dump(data))


def test_workers_killed_a_broken_policy_and_a_full_disk_end_with_every_file_ok(tmp_path):
    policy = tmp_path / "policy.yaml"
    write_policy(policy)
    photos = {f"p{i:03}.jpg": photo_bytes(i) for i in range(PHOTOS)}
    late = {f"late{i:02}.jpg": photo_bytes(1000 + i) for i in range(LATE_PHOTOS)}
    with dagster_dev(tmp_path, policy=policy) as dev:
        dev.wait_until_ready()
        store = LocalObjectStore(dev.store_root)
        killer = WorkerKiller(times=3, every=1.0)
        killer.start()
        drop(dev.inbox, photos)

        # a run is working: its policy is pinned; break the file under it, then mend it
        wait_for(decode_workers, 60, "a batch run's decode workers", interval=0.1)
        policy.write_text("batching: [unclosed\n")
        time.sleep(6)  # at least one sensor tick reads the broken file
        write_policy(policy)
        killer.join()

        # the store runs short of space: new work is held, then goes once there is room
        write_policy(policy, limits={"min_free_bytes": 2**50})
        drop(dev.inbox, late)
        wait_for(lambda: "disk_guard" in set(read_audit(store)["from"].drop_nulls()), 60,
                 "the disk guard to engage")
        write_policy(policy)

        names = set(photos) | set(late)
        wait_for(lambda: set(read_arrivals(store)["source_name"]) >= names, 150,
                 "every file catalogued", interval=1)

    arrivals = read_arrivals(store)
    assert killer.killed == 3
    assert arrivals.filter(pl.col("status") != "ok").is_empty(), arrivals.filter(
        pl.col("status") != "ok").select("source_name", "status", "reason").to_dicts()
    assert sorted(arrivals["source_name"]) == sorted(names)
    assert list(dev.inbox.iterdir()) == []
    audit = read_audit(store)
    raised = set(audit.filter(pl.col("action") == "alert")["from"])
    cleared = set(audit.filter(pl.col("action") == "alert_cleared")["from"])
    assert {"policy", "disk_guard"} <= raised and {"policy", "disk_guard"} <= cleared
    retried = [f for key in set(arrivals["batch_key"])
               for f in (load_manifest(store, key) or {}).get("files") or []
               if f.get("retried")]
    assert all(f["status"] == "ok" for f in retried)  # a killed file, run again alone
