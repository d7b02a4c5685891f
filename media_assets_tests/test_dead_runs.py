"""Dead runs end by themselves, under the real daemon: a run whose process is killed is
failed and run again; a run whose processes all died with `dagster dev` (a lost machine)
is failed by run monitoring after the restart, frees its lane's slot, and its batch runs
again, every file ending `ok` with no manual step."""

import os
import signal
import time
from pathlib import Path

import polars as pl
import pytest

from media_assets.records.catalog import read_arrivals
from media_assets.storage import LocalObjectStore
from media_assets_tests.chaos_tools import busy, decode_workers, drop, photo_bytes, run_workers
from media_assets_tests.dagster_dev import DagsterDev, dagster_dev, wait_for

pytestmark = pytest.mark.slow

PHOTOS = 40


def batch_run(dev: DagsterDev, batch: str) -> dict:
    """The first run of a batch (its run key is the batch key)."""
    [run] = [r for r in dev.runs() if r["tags"].get("dagster/run_key") == batch]
    return run


def decoding_batch(dev: DagsterDev) -> str:
    """Wait until a batch run is decoding (its workers use CPU); its batch key."""
    wait_for(lambda: busy(decode_workers()), 90, "a batch run decoding", interval=0.1)
    [run] = [r for r in dev.runs() if r["status"] == "STARTED"
             and r["tags"].get("dagster/partition")]
    return run["tags"]["dagster/partition"]


def all_ok(store: LocalObjectStore, names: set[str]) -> None:
    arrivals = read_arrivals(store).filter(pl.col("source_name").is_in(list(names)))
    assert sorted(arrivals["source_name"]) == sorted(names)
    bad = arrivals.filter(pl.col("status") != "ok")
    assert bad.is_empty(), bad.select("source_name", "status", "reason").to_dicts()


def test_a_killed_run_process_is_failed_and_run_again(tmp_path: Path):
    photos = {f"k{i:03}.jpg": photo_bytes(i) for i in range(PHOTOS)}
    with dagster_dev(tmp_path) as dev:
        dev.wait_until_ready()
        store = LocalObjectStore(dev.store_root)
        drop(dev.inbox, photos)
        batch = decoding_batch(dev)
        [worker] = run_workers()
        os.kill(worker, signal.SIGKILL)
        wait_for(lambda: batch_run(dev, batch)["status"] == "FAILURE", 60,
                 "the killed run to be failed")

        def retried_and_succeeded() -> bool:
            return any(r["status"] == "SUCCESS" for r in dev.runs()
                       if r["tags"].get("dagster/partition") == batch
                       and r["tags"].get("dagster/retry_number"))

        wait_for(retried_and_succeeded, 180, "Dagster's run retry to succeed", interval=1)
    all_ok(store, set(photos))


def test_a_run_that_died_with_dagster_dev_is_failed_after_the_restart_and_its_batch_runs_again(
        tmp_path: Path):
    photos = {f"d{i:03}.jpg": photo_bytes(100 + i) for i in range(PHOTOS)}
    with dagster_dev(tmp_path) as dev:
        dev.wait_until_ready()
        store = LocalObjectStore(dev.store_root)
        drop(dev.inbox, photos)
        batch = decoding_batch(dev)
        dead_run = batch_run(dev, batch)["runId"]
        dev.crash()
    assert not decode_workers()  # the decode workers died with their run

    restarted_at = time.monotonic()
    with dagster_dev(tmp_path) as dev:
        dev.wait_until_ready()
        # Dagster alone would leave it STARTED, holding its lane's slot, for good
        wait_for(lambda: dev.run_status(dead_run) == "FAILURE", 90,
                 "run monitoring to fail the dead run")
        failed_within = time.monotonic() - restarted_at
        wait_for(lambda: any(r["status"] == "SUCCESS" for r in dev.runs()
                             if r["tags"].get("dagster/partition") == batch), 180,
                 "the batch to run again and succeed", interval=1)
        message = dev.graphql(
            f'{{ logsForRun(runId: "{dead_run}") {{ ... on EventConnection {{ events {{ '
            f'__typename ... on MessageEvent {{ message }} }} }} }} }}')
    all_ok(store, set(photos))
    failures = [e["message"] for e in message["logsForRun"]["events"]
                if e["__typename"] == "RunFailureEvent"]
    assert failures and "run worker (pid" in failures[-1], failures
    assert failed_within < 120
