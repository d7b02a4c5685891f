"""Videos and audio through the sensor and their own batch runs: metadata, posters, web
renditions, audio previews and waveforms, catalogued with images, broken files quarantined."""

import json

import av
import polars as pl
import pytest
from dagster import AssetKey, build_sensor_context
from PIL import Image

from media_assets.core.policy import load_policy
from media_assets.defs.maintenance import stale_derivatives_sensor
from media_assets.records.catalog import stale_derivatives
from media_assets.records.layout import spec_output_key
from media_assets.samples.av import write_sample_av, write_video

GOOD = {"clip_h264.mp4", "phone_portrait.mov", "clip_vp9.webm", "clip_mpeg4_odd.avi",
        "clip_mjpeg.mov", "song_cover.mp3", "voice_mono.wav", "music.flac", "speech.opus",
        "surround_51.m4a", "audio_only.mp4"}
VIDEOS = {"clip_h264.mp4", "phone_portrait.mov", "clip_vp9.webm", "clip_mpeg4_odd.avi",
          "clip_mjpeg.mov"}


@pytest.fixture(scope="module")
def av_batch(tmp_path_factory):
    """The sample videos and audio (incl. four broken files), through sensor and runs."""
    from dagster import DagsterInstance

    from media_assets_tests.defs_tests.conftest import Installation

    root = tmp_path_factory.mktemp("av")
    install = Installation(root=root, instance=DagsterInstance.ephemeral())
    # when_needed (not the default): a fitting H.264 MP4 is its own rendition
    install.set_policy(video={"rendition": {"mode": "when_needed"}})
    write_sample_av(install.inbox / "av", size=(192, 144), seconds=1.5)
    install.age_inbox()
    requests = install.tick().run_requests
    runs = [install.process(r.partition_key, job_name=r.job_name) for r in requests]
    assert all(run.success for run in runs)
    return install, requests, runs


def request_key(requests) -> str:
    [key] = [r.partition_key for r in requests if r.tags["media_assets/lane"] == "av"]
    return key


def rows(install) -> dict[str, dict]:
    return {r["source_name"].removeprefix("av/"): r
            for r in install.arrivals().iter_rows(named=True)}


def derivatives(row: dict) -> dict[str, dict]:
    return {d["name"]: d for d in row["derivatives"]}


def test_videos_and_audio_get_their_own_batch_and_job(av_batch):
    _, requests, _ = av_batch
    by_lane = {r.tags["media_assets/lane"]: r.job_name for r in requests}
    assert by_lane["av"] == "process_av"
    # Content that is no media at all (empty, garbage) is rejected cheaply with the images.
    assert set(by_lane) <= {"av", "image"}


def test_good_files_are_catalogued_and_broken_ones_quarantined(av_batch):
    install, _, _ = av_batch
    found = rows(install)
    if "clip_hevc.mp4" in found:  # only where the installed PyAV can encode HEVC
        assert found.pop("clip_hevc.mp4")["video_codec"] == "hevc"
    assert {n for n, r in found.items() if r["status"] == "ok"} == GOOD
    assert {n: (r["status"], r["reason"]) for n, r in found.items() if n not in GOOD} == {
        "truncated.mp4": ("quarantined", "truncated"),
        "empty.mov": ("quarantined", "empty"),
        "garbage.mp4": ("quarantined", "unsupported_type"),
        "header_only.wav": ("quarantined", "truncated"),
    }
    assert {found[n]["media_kind"] for n in VIDEOS} == {"video"}
    assert {found[n]["media_kind"] for n in GOOD - VIDEOS} == {"audio"}


def test_every_video_has_a_poster_thumbnail_and_a_web_rendition(av_batch):
    install, _, _ = av_batch
    for name in VIDEOS:
        made = derivatives(rows(install)[name])
        assert {"thumbnail", "web_rendition"} <= set(made), name
        with install.store.local_path(made["thumbnail"]["key"]) as path, Image.open(path) as im:
            assert im.format == "WEBP" and max(im.size) <= 250
        with install.store.local_path(made["web_rendition"]["key"]) as path, \
                av.open(str(path)) as rendition:
            assert rendition.streams.video[0].codec_context.name == "h264"
            assert max(made["web_rendition"]["width"], made["web_rendition"]["height"]) <= 720


def test_a_phone_video_is_turned_upright_with_its_frame_rate_capped(av_batch):
    install, _, _ = av_batch
    row = rows(install)["phone_portrait.mov"]
    assert (row["width"], row["height"]) == (144, 192)  # stored 192x144, shown portrait
    assert json.loads(row["metadata_json"])["video"][0]["rotation"] == 90
    rendition = derivatives(row)["web_rendition"]
    assert rendition["width"] < rendition["height"]
    with install.store.local_path(rendition["key"]) as path, av.open(str(path)) as clip:
        stream = clip.streams.video[0]
        assert float(stream.average_rate) <= 30
        assert [s.codec_context.name for s in clip.streams.audio] == ["aac"]
        first = next(clip.decode(stream))
        assert first.rotation == 0  # baked in, no display matrix left to honour


def test_an_mp4_that_already_fits_is_its_own_rendition(av_batch):
    install, _, _ = av_batch
    row = rows(install)["clip_h264.mp4"]
    rendition = derivatives(row)["web_rendition"]
    assert rendition["key"] == row["original_key"]  # no second copy; a purge removes both
    assert not [k for k in install.store.list("derived/web_rendition/")
                if row["content_id"] in k]


def test_audio_gets_a_preview_and_a_waveform_and_cover_art_becomes_its_thumbnail(av_batch):
    install, _, _ = av_batch
    policy = load_policy(install.policy_path)
    found = rows(install)
    for name in GOOD - VIDEOS:
        made = derivatives(found[name])
        assert {"audio_preview", "waveform", "waveform_image"} <= set(made), name
        envelope = json.loads(install.store.read_bytes(made["waveform"]["key"]))
        assert len(envelope["min"]) == len(envelope["max"]) == policy.audio.waveform.buckets
        assert ("thumbnail" in made) == (name == "song_cover.mp3")
    song = found["song_cover.mp3"]
    meta = json.loads(song["metadata_json"])
    assert (meta["title"], meta["artist"], meta["has_cover_art"]) == (
        "Sample song", "media_assets", True)
    assert song["creator"] == "media_assets" and song["audio_codec"] == "mp3"
    surround = json.loads(found["surround_51.m4a"]["metadata_json"])
    assert surround["audio"][0]["channels"] == 6


def test_the_checks_pass_and_each_asset_reports_what_it_did(av_batch):
    _, requests, runs = av_batch
    [run] = [run for run, r in zip(runs, requests, strict=True)
             if r.tags["media_assets/lane"] == "av"]
    evaluations = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert {"web_rendition_plays", "audio_preview_conforms", "waveform_conforms",
            "poster_conforms", "originals_fixity", "catalog_matches_batch"} <= set(evaluations)
    assert all(e.passed for e in evaluations.values()), {
        name: e.metadata for name, e in evaluations.items() if not e.passed}
    materialized = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
                    for e in run.get_asset_materialization_events()}
    # image assets are not part of a video run: with no image in the batch they are
    # recorded as having nothing to make (partition health: complete, not missing)
    assert materialized["thumbnails"]["files"].value == 0
    assert "data:image/webp;base64," in materialized["poster"]["contact_sheet"].value
    assert materialized["web_rendition"]["files"].value == len(VIDEOS) + (
        1 if "libx265" in av.codecs_available else 0)
    plans = {r.data["source_name"]: r.data["action"] for r in
             materialized["web_rendition"]["renditions"].records}
    assert plans["av/clip_h264.mp4"] == "skip" and plans["av/clip_vp9.webm"] == "transcode"


def test_a_rerun_renders_nothing_again_and_changes_no_row(av_batch):
    install, requests, _ = av_batch
    [request] = [r for r in requests if r.tags["media_assets/lane"] == "av"]
    before = install.arrivals().drop("cataloged_at", "run_id").sort("source_name")
    rerun = install.process(request.partition_key, job_name="process_av")
    assert rerun.success
    rendered = {e.materialization.asset_key.to_user_string():
                e.materialization.metadata["rendered"].value
                for e in rerun.get_asset_materialization_events()
                if "rendered" in e.materialization.metadata}
    assert set(rendered.values()) == {0}
    after = install.arrivals().drop("cataloged_at", "run_id").sort("source_name")
    assert [c for c in before.columns if not after[c].equals(before[c])] == []


def test_a_changed_rendition_spec_re_renders_only_renditions(av_batch):
    install, requests, _ = av_batch
    posters_before = sorted(install.store.list("derived/thumbnail/"))
    install.set_policy(video={"rendition": {"mode": "always", "long_edge": 96}})
    policy = load_policy(install.policy_path)
    stale = stale_derivatives(install.arrivals(), policy)
    assert set(stale["derivative"]) == {"web_rendition"}
    assert set(stale["media_kind"]) == {"video"}
    [request] = stale_derivatives_sensor(build_sensor_context(
        instance=install.instance, resources=install.sensor_resources())).run_requests
    assert set(request.asset_selection) == {AssetKey("web_rendition"), AssetKey("catalog")}
    assert request.partition_key == request_key(requests)

    assert install.process(request.partition_key, ["web_rendition", "catalog"]).success
    assert stale_derivatives(install.arrivals(), policy).is_empty()
    assert sorted(install.store.list("derived/thumbnail/")) == posters_before
    row = rows(install)["clip_h264.mp4"]
    rendition = derivatives(row)["web_rendition"]
    assert rendition["key"] == spec_output_key(policy.video.rendition, row["content_id"])
    assert max(rendition["width"], rendition["height"]) == 96
    install.set_policy()


def test_a_video_over_its_time_limit_is_quarantined_and_the_batch_goes_on(install):
    install.set_policy(video={"timeout_seconds": 0.5})
    # Its web rendition takes ~4x the limit here (2 s), so a faster machine still overruns it.
    write_video(install.inbox / "long.mp4", seconds=30, fps=30, size=(640, 480), audio=None)
    write_video(install.inbox / "short.mp4", seconds=1, audio=None)
    install.age_inbox()
    [run] = install.ingest()
    assert run.success
    found = {r["source_name"]: r for r in install.arrivals().iter_rows(named=True)}
    assert (found["long.mp4"]["status"], found["long.mp4"]["reason"]) == (
        "quarantined", "timeout")
    assert found["short.mp4"]["status"] == "ok"
    assert install.store.exists(found["long.mp4"]["quarantine_key"])


def test_video_and_audio_rows_share_the_catalog_with_images(av_batch):
    install, _, _ = av_batch
    kinds = install.arrivals().group_by("media_kind").len()
    assert {"video", "audio"} <= set(kinds["media_kind"].drop_nulls())
    durations = install.arrivals().filter(pl.col("status") == "ok")["duration_seconds"]
    assert durations.min() > 1.0


def test_a_heavy_video_runs_in_the_heavy_lane_with_every_asset(install):
    install.set_policy(batching={"heavy_min_bytes": 20_000})
    clip = write_video(install.inbox / "big.mp4", seconds=2, size=(320, 240), fps=25)
    assert clip.stat().st_size >= 20_000
    install.age_inbox()
    [request] = install.tick().run_requests
    assert (request.tags["media_assets/lane"], request.job_name) == ("heavy", "process_batch")
    assert install.process(request.partition_key, job_name=request.job_name).success
    [row] = install.arrivals().iter_rows(named=True)
    assert {"thumbnail", "web_rendition"} <= set(derivatives(row))
