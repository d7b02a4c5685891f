"""Web renditions: planned from the probe alone, then streamed frame by frame into a
fast-start H.264/AAC MP4 with rotation baked in and the frame rate capped."""

import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from media_assets.codec.av_probe import probe_av
from media_assets.codec.rendition import plan_rendition, transcode
from media_assets.core.policy import RenditionSpec


def probe(codec="h264", width=1920, height=1080, fps=30.0, rotation=0, audio=("aac",),
          container="mov,mp4,m4a,3gp,3g2,mj2"):
    return {"container": container,
            "video": [{"codec": codec, "width": width, "height": height, "frame_rate": fps,
                       "rotation": rotation}],
            "audio": [{"codec": c} for c in audio]}


def test_a_1080p_source_is_scaled_to_720_with_even_sides():
    plan = plan_rendition(probe(width=1919, height=1079), RenditionSpec())
    assert (plan.action, plan.width, plan.height) == ("transcode", 720, 404)


def test_rotation_swaps_the_target_sides_and_fps_is_capped():
    plan = plan_rendition(probe(rotation=90, fps=60), RenditionSpec())
    assert (plan.width, plan.height, plan.fps, plan.rotation) == (404, 720, 30.0, 90)


@pytest.mark.parametrize(("mode", "action"), [("when_needed", "skip"), ("always", "transcode"),
                                              ("never", "skip")])
def test_the_policy_mode_decides_for_a_file_that_already_fits(mode, action):
    small = probe(width=640, height=360)
    assert plan_rendition(small, RenditionSpec(mode=mode)).action == action


def test_when_needed_still_transcodes_other_codecs():
    assert plan_rendition(probe(codec="vp9", width=640, height=360, container="matroska,webm"),
                          RenditionSpec(mode="when_needed")).action == "transcode"
    assert plan_rendition(probe(width=640, height=360, audio=("opus",)),
                          RenditionSpec(mode="when_needed")).action == "transcode"


def phone_clip(path, *, seconds=2, fps=60, size=(200, 120), rotation=-90, audio=True):
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=44_100, layout="mono") if audio else None
        for i in range(seconds * fps):
            pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            pixels[: size[1] // 2, : size[0] // 2] = (230, 20, 20)  # red top-left
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if sound is not None:
            for i in range(seconds * 44_100 // 1024):
                data = np.zeros((1, 1024), dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 44_100, i * 1024
                frame.time_base = Fraction(1, 44_100)
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
    return path


def test_a_phone_clip_becomes_an_upright_fast_start_mp4(tmp_path):
    source = phone_clip(tmp_path / "phone.mov")
    info = probe_av(source)
    plan = plan_rendition(info, RenditionSpec())
    target = tmp_path / "web.mp4"
    transcode(source, target, plan, RenditionSpec())
    out = probe_av(target)
    [video] = out["video"]
    assert (video["codec"], video["width"], video["height"]) == ("h264", 120, 200)
    assert video["rotation"] == 0 and video["frame_rate"] == 30
    assert [a["codec"] for a in out["audio"]] == ["aac"]
    assert abs(out["duration_seconds"] - info["duration_seconds"]) < 0.5
    data = target.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # fast start: playable while loading
    with av.open(str(target)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert frame[5, -5, 0] > 150 and frame[5, 5, 0] < 100  # red now top-right: turned clockwise


def test_a_video_without_audio_gets_no_audio_stream(tmp_path):
    source = phone_clip(tmp_path / "silent.mp4", audio=False, rotation=0)
    transcode(source, tmp_path / "web.mp4", plan_rendition(probe_av(source), RenditionSpec(
        mode="always")), RenditionSpec())
    assert probe_av(tmp_path / "web.mp4")["audio"] == []


PEAK_RSS = """
import resource, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from media_assets_tests.codec_tests.test_rendition import phone_clip
from media_assets.codec.av_probe import probe_av
from media_assets.core.policy import RenditionSpec
from media_assets.codec.rendition import plan_rendition, transcode
src = phone_clip(Path({path!r}), seconds={seconds}, fps=50, size=(32, 32), rotation=0,
                 audio=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
transcode(src, Path({path!r} + ".out.mp4"),
          plan_rendition(probe_av(src), RenditionSpec(mode="always")), RenditionSpec())
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_memory_does_not_grow_with_the_length_of_the_source(tmp_path):
    """Long clips of tiny frames: 10x the length must not mean 10x the memory."""
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])

    def growth_kib(seconds: int) -> int:
        code = PEAK_RSS.format(root=root, path=str(tmp_path / f"c{seconds}.mp4"),
                               seconds=seconds)
        return int(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                  text=True, check=True).stdout.strip())

    short, long = growth_kib(6), growth_kib(60)
    assert long - short < 20 * 1024, (short, long)


def test_a_fitting_mp4_is_transcoded_anyway_when_browsers_cannot_play_it_as_it_is(tmp_path):
    from media_assets.codec.rendition import moov_first
    from media_assets.samples.av import write_video

    ten_bit = probe(width=640, height=360)
    ten_bit["video"][0]["pixel_format"] = "yuv422p10le"
    assert plan_rendition(ten_bit, RenditionSpec(mode="when_needed")).action == "transcode"
    assert moov_first(write_video(tmp_path / "web.mp4", faststart=True))
    assert not moov_first(write_video(tmp_path / "camera.mp4"))  # index at the end


def test_by_default_every_derivative_is_re_encoded_with_the_source_metadata_stripped(tmp_path):
    """No byte pass-through: even an H.264/AAC fast-start MP4 that fits every limit is
    transcoded, and no container tag of the source (title, GPS location) follows it."""
    from media_assets.codec.audio_preview import render_audio_preview
    from media_assets.codec.rendition import render_web_rendition
    from media_assets.core.policy import Policy
    from media_assets.samples.av import write_audio, write_video

    secret = {"title": "secret", "location": "+48.8584+002.2945/", "comment": "gps"}
    source = write_video(tmp_path / "fits.mp4", tags=secret, faststart=True)
    assert Policy().video.rendition.mode == "always"
    plan = render_web_rendition(source, tmp_path / "r.mp4", Policy().video.rendition)
    assert plan["action"] == "transcode"
    assert (tmp_path / "r.mp4").read_bytes() != source.read_bytes()
    song = write_audio(tmp_path / "song.mp3", "libmp3lame", tags={"title": "secret",
                                                                  "artist": "someone"})
    render_audio_preview(song, tmp_path / "p.m4a")
    for output in (tmp_path / "r.mp4", tmp_path / "p.m4a"):
        with av.open(str(output)) as container:
            tags = {**container.metadata, **{k: v for s in container.streams
                                             for k, v in s.metadata.items()}}
        assert not {"title", "location", "location-eng", "comment", "artist"} & set(tags)
        assert "secret" not in " ".join(tags.values())
