"""Heavy files form their own lane: classed by cost from the cheap probe (bytes, pixels,
duration, codec) before any processing, they go in their own batches and runs, with their own
tag and queue limit, while ordinary photos and short clips go on in the same tick."""

import json
from pathlib import Path

from media_assets.defs.partitions import LANE_TAG
from media_assets.records.manifest import load_manifest
from media_assets.samples.av import write_video

REPO = Path(__file__).resolve().parents[2]


def batch_names(install, request) -> list[str]:
    return sorted(s["inbox"] for s in load_manifest(install.store, request.partition_key)
                  ["sources"])


def test_long_and_4k_videos_go_to_heavy_runs_while_photos_and_short_clips_flow(
        install, jpeg_header):
    # 40 minutes of 16x16 frames at 1 fps: long, yet ~100 kB; its index (moov) is at the end
    write_video(install.inbox / "lecture.mp4", seconds=2400, fps=1, size=(16, 16), audio=None)
    write_video(install.inbox / "drone_4k.mp4", seconds=0.1, size=(3840, 2160), audio=None,
                faststart=True)
    write_video(install.inbox / "clip.mp4", seconds=1)
    install.drop("photo_1.jpg", jpeg_header)
    install.drop("photo_2.jpg", jpeg_header + b"2")
    install.age_inbox()

    result = install.tick()

    runs = {r.tags[LANE_TAG]: r for r in result.run_requests}
    assert sorted(runs) == ["av", "heavy", "image"]
    assert {lane: r.job_name for lane, r in runs.items()} == {
        "av": "process_av", "heavy": "process_batch", "image": "process_images"}
    assert batch_names(install, runs["heavy"]) == ["drone_4k.mp4", "lecture.mp4"]
    assert batch_names(install, runs["av"]) == ["clip.mp4"]
    assert batch_names(install, runs["image"]) == ["photo_1.jpg", "photo_2.jpg"]


def test_why_a_file_went_heavy_is_in_the_tick_and_the_manifest(install, capfd):
    write_video(install.inbox / "lecture.mp4", seconds=2400, fps=1, size=(16, 16), audio=None)
    write_video(install.inbox / "drone_4k.mp4", seconds=0.1, size=(3840, 2160), audio=None)
    install.age_inbox()

    result = install.tick()

    [request] = result.run_requests
    manifest = load_manifest(install.store, request.partition_key)
    assert {s["inbox"]: s["heavy_because"] for s in manifest["sources"]} == {
        "drone_4k.mp4": "video pixels: 3840x2160 >= 8294400",
        "lecture.mp4": "duration: 2400 s >= 1800 s"}
    tick_log = capfd.readouterr().err  # what the tick says, as the daemon logs it
    assert "1 runs for 2 files (1 heavy); heavy by duration (1), video pixels (1)" in tick_log


def test_the_heavy_thresholds_come_from_the_policy(install):
    install.set_policy(batching={"heavy_min_duration_seconds": 1, "heavy_codecs": []})
    write_video(install.inbox / "clip.mp4", seconds=2)
    install.age_inbox()
    [request] = install.tick().run_requests
    assert request.tags[LANE_TAG] == "heavy"


def test_on_kubernetes_each_lanes_runs_carry_their_pod_config(install, jpeg_header,
                                                               monkeypatch):
    pods = REPO / "deploy" / "k8s-lane-resources.yaml"
    monkeypatch.setenv("MEDIA_ASSETS_K8S_LANE_RESOURCES", str(pods))
    write_video(install.inbox / "drone_4k.mp4", seconds=0.1, size=(3840, 2160), audio=None)
    install.drop("photo.jpg", jpeg_header)
    install.age_inbox()

    runs = {r.tags[LANE_TAG]: r.tags for r in install.tick().run_requests}

    heavy = json.loads(runs["heavy"]["dagster-k8s/config"])
    assert heavy["pod_spec_config"]["node_selector"] == {"media-assets/pool": "heavy"}
    image = json.loads(runs["image"]["dagster-k8s/config"])
    assert image["container_config"]["resources"]["requests"]["cpu"] == "2"
