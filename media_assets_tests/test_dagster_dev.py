"""End to end under the real daemon: `dagster dev` with its own DAGSTER_HOME, files dropped
in the inbox, the sensor launches batch runs, and the catalog fills within a minute."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from media_assets.media.catalog import read_arrivals
from media_assets.samples import write_sample_images
from media_assets.storage import LocalObjectStore

REPO = Path(__file__).resolve().parents[1]
RUNS_QUERY = ('{ runsOrError { ... on Runs { results { runId status '
              'tags { key value } } } } }')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def dagster_dev(tmp_path: Path):
    home, port = tmp_path / "dagster_home", free_port()
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "MEDIA_ASSETS_INBOX": str(tmp_path / "inbox"),
           "MEDIA_ASSETS_STORE": str(tmp_path / "store"),
           "MEDIA_ASSETS_POLICY": str(REPO / "policy.yaml")}
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=(tmp_path / "dev.log").open("wb"),
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield tmp_path, port
    finally:
        process.send_signal(signal.SIGINT)  # to the parent only: the group hangs on SIGINT
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.slow
def test_dropped_files_are_catalogued_by_sensor_launched_runs(dagster_dev):
    root, port = dagster_dev

    def ready():
        try:
            return graphql(port, "{ version }")
        except OSError:
            return None

    wait_for(ready, 90, "the webserver")
    write_sample_images(root / "inbox", size=(480, 360))
    store = LocalObjectStore(root / "store")

    def catalogued():
        return read_arrivals(store).height == 10

    wait_for(catalogued, 90, "10 catalogue rows")
    rows = {r["source_name"]: r["status"] for r in read_arrivals(store).iter_rows(named=True)}
    assert rows["broken.jpg"] == "quarantined" and rows["camera_rotated.jpg"] == "ok"
    assert list((root / "inbox").iterdir()) == []

    runs = wait_for(lambda: [r for r in graphql(port, RUNS_QUERY)["runsOrError"]["results"]
                             if r["status"] == "SUCCESS"], 60, "a successful run")
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert tags["media_assets/lane"] == "image"
    assert tags["dagster/sensor_name"] == "inbox_sensor"
