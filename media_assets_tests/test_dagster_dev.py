"""End to end under the real daemon: `dagster dev` with its own DAGSTER_HOME, files dropped
in the inbox, the sensor launches batch runs, and the catalog fills within a minute."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from media_assets.records.catalog import read_arrivals
from media_assets.samples import write_sample_images
from media_assets.samples.av import write_video
from media_assets.storage import LocalObjectStore
from media_assets_tests.dagster_dev import REPO, dagster_dev, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def dev(tmp_path: Path):
    policy = yaml.safe_load((REPO / "policy.yaml").read_text())
    policy["batching"]["av_max_files"] = 1  # one video per batch: several video runs
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    with dagster_dev(tmp_path, policy=tmp_path / "policy.yaml") as running:
        running.wait_until_ready()
        yield running


def set_pool(dev, pool: str, slots: int) -> None:
    """`dagster instance concurrency set` on the running instance (as `make dev` does)."""
    dagster = Path(sys.executable).with_name("dagster")
    subprocess.run([str(dagster), "instance", "concurrency", "set", pool, str(slots)],
                   env={**os.environ, "DAGSTER_HOME": str(dev.root / "dagster_home")},
                   check=True, capture_output=True)


def test_dropped_files_are_catalogued_by_sensor_launched_runs(dev):
    write_sample_images(dev.inbox, size=(480, 360))
    store = LocalObjectStore(dev.store_root)
    wait_for(lambda: read_arrivals(store).height == 10, 90, "10 catalogue rows", interval=1)
    rows = {r["source_name"]: r["status"] for r in read_arrivals(store).iter_rows(named=True)}
    assert rows["broken.jpg"] == "quarantined" and rows["camera_rotated.jpg"] == "ok"
    assert list(dev.inbox.iterdir()) == []

    # (maintenance runs, e.g. the catalog index after new fragments, may finish first)
    runs = wait_for(lambda: [r for r in dev.runs() if r["status"] == "SUCCESS"
                             and "media_assets/lane" in r["tags"]], 60, "a successful batch run")
    assert runs[0]["tags"]["media_assets/lane"] == "image"
    assert runs[0]["tags"]["dagster/sensor_name"] == "inbox_sensor"


def test_image_batches_keep_flowing_while_video_batches_queue(dev):
    """A burst of videos holds the transcoding pool (no slot free) and their runs queue behind
    the video lane's limit of one run; photos dropped after them go through meanwhile. The
    order is forced by the pool, not left to timing."""
    set_pool(dev, "transcode", 0)  # the transcoder is busy: video work cannot proceed
    dev.inbox.mkdir()
    for index in range(3):
        write_video(dev.inbox / f"video_{index}.webm", codec="libvpx-vp9", seconds=4,
                    audio_codec="libopus", size=(320, 240))

    def video_runs():
        found = [r for r in dev.runs() if r["tags"].get("media_assets/lane") == "av"]
        return found if len(found) == 3 else None

    wait_for(video_runs, 90, "three video runs", interval=1)
    write_sample_images(dev.inbox, size=(320, 240))
    store = LocalObjectStore(dev.store_root)
    wait_for(lambda: read_arrivals(store).height == 10, 120, "the photos' catalogue rows",
             interval=1)
    assert all(r["status"] in ("QUEUED", "STARTING", "STARTED") for r in video_runs())
    set_pool(dev, "transcode", 1)  # the transcoder frees up: the videos follow
    wait_for(lambda: read_arrivals(store).height == 13, 180, "13 catalogue rows", interval=1)
    wait_for(lambda: all(r["status"] == "SUCCESS" for r in dev.runs()), 60, "all runs")

    by_lane: dict[str, list[dict]] = {}
    for run in dev.runs():  # scheduled maintenance runs (freshness, index) carry no lane
        if lane := run["tags"].get("media_assets/lane"):
            by_lane.setdefault(lane, []).append(run)
    videos = sorted(by_lane["av"], key=lambda r: r["startTime"])
    [images] = by_lane["image"]
    for earlier, later in zip(videos, videos[1:], strict=False):
        assert earlier["endTime"] <= later["startTime"], "two video runs ran at once"
    assert images["startTime"] < videos[-1]["startTime"], "photos waited behind videos"
