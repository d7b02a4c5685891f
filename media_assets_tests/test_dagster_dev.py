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
import yaml

from media_assets.media.catalog import read_arrivals
from media_assets.samples import write_sample_images
from media_assets.samples.av import write_video
from media_assets.storage import LocalObjectStore

REPO = Path(__file__).resolve().parents[1]
RUNS_QUERY = ('{ runsOrError { ... on Runs { results { runId status startTime endTime '
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
    policy = yaml.safe_load((REPO / "policy.yaml").read_text())
    policy["batching"]["av_max_files"] = 1  # one video per batch: several video runs
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    env = {**os.environ, "DAGSTER_HOME": str(home),
           "MEDIA_ASSETS_INBOX": str(tmp_path / "inbox"),
           "MEDIA_ASSETS_STORE": str(tmp_path / "store"),
           "MEDIA_ASSETS_POLICY": str(tmp_path / "policy.yaml")}
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


def wait_until_ready(port: int) -> None:
    def ready():
        try:
            return graphql(port, "{ version }")
        except OSError:
            return None

    wait_for(ready, 90, "the webserver")


def runs(port: int) -> list[dict]:
    found = graphql(port, RUNS_QUERY)["runsOrError"]["results"]
    return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in found]


@pytest.mark.slow
def test_dropped_files_are_catalogued_by_sensor_launched_runs(dagster_dev):
    root, port = dagster_dev
    wait_until_ready(port)
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


@pytest.mark.slow
def test_image_batches_keep_flowing_while_video_batches_queue(dagster_dev):
    """Three one-video batches queue behind the video lane's limit of one run; photos dropped
    after them overtake the queued ones (the queue's order, not a timing, is asserted)."""
    root, port = dagster_dev
    wait_until_ready(port)
    (root / "inbox").mkdir()
    for index in range(3):
        write_video(root / "inbox" / f"video_{index}.webm", codec="libvpx-vp9", seconds=4,
                    audio_codec="libopus",
                    size=(320, 240))

    def video_runs():
        found = [r for r in runs(port) if r["tags"].get("media_assets/lane") == "av"]
        return found if len(found) == 3 else None

    wait_for(video_runs, 90, "three video runs")
    write_sample_images(root / "inbox", size=(320, 240))
    store = LocalObjectStore(root / "store")
    wait_for(lambda: read_arrivals(store).height == 13, 180, "13 catalogue rows")
    wait_for(lambda: all(r["status"] == "SUCCESS" for r in runs(port)), 60, "all runs")

    by_lane: dict[str, list[dict]] = {}
    for run in runs(port):
        by_lane.setdefault(run["tags"]["media_assets/lane"], []).append(run)
    videos = sorted(by_lane["av"], key=lambda r: r["startTime"])
    [images] = by_lane["image"]
    for earlier, later in zip(videos, videos[1:], strict=False):
        assert earlier["endTime"] <= later["startTime"], "two video runs ran at once"
    assert images["startTime"] < videos[-1]["startTime"], "photos waited behind videos"
