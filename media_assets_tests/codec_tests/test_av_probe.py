"""Probing video and audio with PyAV: streams, rotation, audio layouts, broken inputs."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media_assets.codec.av_probe import probe_av
from media_assets.core.errors import Rejected


def write_video(path: Path, *, codec: str = "libx264", seconds: float = 1.0, fps: int = 10,
                size: tuple[int, int] = (64, 48), audio: bool = True,
                rotation: int | None = None) -> Path:
    """A small synthetic clip: moving gradient frames, optional sine-wave audio."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height = size
        video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=48_000, layout="stereo") if audio else None
        for i in range(int(seconds * fps)):
            pixels = np.full((size[1], size[0], 3), (i * 20) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if sound is not None:
            samples = 1024
            for i in range(int(seconds * 48_000 / samples)):
                t = (np.arange(samples) + i * samples) / 48_000
                wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp",
                                                   layout="stereo")
                frame.sample_rate, frame.pts = 48_000, i * samples
                frame.time_base = Fraction(1, 48_000)
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
    return path


def write_audio(path: Path, codec: str, layout: str = "stereo", rate: int = 44_100) -> Path:
    channels = {"mono": 1, "stereo": 2, "5.1": 6}[layout]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        fmt = stream.codec_context.format.name
        samples = 1152
        for i in range(20):
            dtype = {"s16": np.int16, "s32": np.int32, "flt": np.float32}[fmt.rstrip("p")]
            data = np.zeros((channels, samples), dtype=dtype)
            if not fmt.endswith("p"):
                data = data.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
            frame.sample_rate, frame.pts = rate, i * samples
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_an_h264_clip_with_audio(tmp_path):
    info = probe_av(write_video(tmp_path / "clip.mp4", seconds=2))
    [video] = info["video"]
    [audio] = info["audio"]
    assert info["container"].startswith("mov") and 1.8 <= info["duration_seconds"] <= 2.3
    assert (video["codec"], video["width"], video["height"]) == ("h264", 64, 48)
    assert video["frame_rate"] == 10 and video["rotation"] == 0 and video["hdr"] is None
    assert (audio["codec"], audio["channels"], audio["sample_rate"]) == ("aac", 2, 48_000)


@pytest.mark.parametrize(("matrix_degrees", "clockwise"), [(-90, 90), (90, 270), (180, 180)])
def test_a_phone_video_reports_how_to_turn_it_upright(tmp_path, matrix_degrees, clockwise):
    """A portrait phone clip stores landscape frames plus a display matrix of -90 degrees
    (counter-clockwise, as FFmpeg counts): it must be turned 90 degrees clockwise."""
    clip = write_video(tmp_path / "phone.mp4", audio=False, rotation=matrix_degrees)
    info = probe_av(clip)
    assert info["video"][0]["rotation"] == clockwise
    assert info["audio"] == []


@pytest.mark.parametrize(("codec", "suffix", "expected"), [
    ("libvpx-vp9", "webm", "vp9"), ("mpeg4", "mp4", "mpeg4"), ("mjpeg", "mov", "mjpeg"),
])
def test_other_video_codecs(tmp_path, codec, suffix, expected):
    info = probe_av(write_video(tmp_path / f"clip.{suffix}", codec=codec, audio=False))
    assert info["video"][0]["codec"] == expected


@pytest.mark.parametrize(("codec", "suffix", "layout"), [
    ("pcm_s16le", "wav", "mono"), ("flac", "flac", "stereo"), ("libmp3lame", "mp3", "stereo"),
    ("aac", "m4a", "5.1"), ("libopus", "ogg", "stereo"),
])
def test_audio_only_files(tmp_path, codec, suffix, layout):
    rate = 48_000 if codec == "libopus" else 44_100
    info = probe_av(write_audio(tmp_path / f"sound.{suffix}", codec, layout, rate))
    [audio] = info["audio"]
    assert info["video"] == []
    assert audio["channels"] == {"mono": 1, "stereo": 2, "5.1": 6}[layout]
    assert audio["sample_rate"] == rate


def test_broken_inputs_are_rejected_with_a_reason(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video at all" * 100)
    whole = write_video(tmp_path / "whole.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(whole[: len(whole) // 3])  # the moov atom (at the end) is cut off
    assert pytest.raises(Rejected, probe_av, empty).value.reason == "empty"
    assert pytest.raises(Rejected, probe_av, garbage).value.reason == "corrupt"
    assert pytest.raises(Rejected, probe_av, truncated).value.reason == "corrupt"
