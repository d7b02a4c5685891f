"""Web renditions of videos: H.264 + AAC in MP4 with the moov atom up front, long edge and
frame rate capped, rotation baked in (pure PyAV, no Dagster).

Frames stream through decode → turn → scale → encode one at a time, so memory does not grow
with the length of the source."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.error import FFmpegError

from media_assets.codec.av_probe import probe_av
from media_assets.codec.resample import FollowingResampler
from media_assets.core.errors import Rejected
from media_assets.core.policy import RenditionSpec


@dataclass(frozen=True)
class RenditionPlan:
    """What to do with one video, decided from its probe alone (tested without decoding)."""

    action: str  # "transcode" | "skip"
    reason: str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    rotation: int = 0


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def plan_rendition(probe: dict[str, Any], spec: RenditionSpec) -> RenditionPlan:
    """Target size (even, aspect kept, after rotation), frame rate, and whether to transcode."""
    if not probe["video"]:
        return RenditionPlan("skip", "no video stream")
    video = probe["video"][0]
    rotation = video.get("rotation") or 0
    width, height = video["width"], video["height"]
    if rotation in (90, 270):
        width, height = height, width
    scale = min(1.0, spec.long_edge / max(width, height))
    fps = min(video.get("frame_rate") or spec.max_fps, spec.max_fps)
    plan = RenditionPlan("transcode", "", _even(width * scale), _even(height * scale), fps,
                         rotation)
    if spec.mode == "never":
        return RenditionPlan("skip", "policy: never")
    audio_ok = all(a["codec"] == "aac" for a in probe["audio"])
    browser_safe = video.get("pixel_format") in (None, "yuv420p", "yuvj420p")
    fits = (video["codec"] == "h264" and audio_ok and probe["container"].startswith("mov")
            and scale == 1.0 and (video.get("frame_rate") or 0) <= spec.max_fps
            and rotation == 0 and browser_safe)
    if spec.mode == "when_needed" and fits:
        return RenditionPlan("skip", "already H.264/AAC MP4 within limits", plan.width,
                             plan.height, plan.fps, 0)
    return RenditionPlan(plan.action, "policy: always" if fits else "needs transcoding",
                         plan.width, plan.height, plan.fps, plan.rotation)


def transcode(path: Path, out_path: Path, plan: RenditionPlan, spec: RenditionSpec) -> None:
    """Write the rendition described by `plan` to `out_path` (atomically, via a temp name)."""
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    fps = Fraction(plan.fps).limit_denominator(1001)
    try:
        with av.open(str(path), metadata_errors="ignore") as source, av.open(
            str(tmp), "w", format="mp4", options={"movflags": "+faststart"}
        ) as out:
            video_in = source.streams.video[0]
            video_in.thread_type = "AUTO"
            audio_in = source.streams.audio[0] if source.streams.audio else None
            video_out = out.add_stream("libx264", rate=fps,
                                       options={"crf": str(spec.crf), "preset": spec.preset})
            video_out.width, video_out.height, video_out.pix_fmt = (plan.width, plan.height,
                                                                   "yuv420p")
            audio_out = resampler = None
            if audio_in is not None:
                audio_out = out.add_stream("aac", rate=48_000, layout="stereo")
                audio_out.bit_rate = spec.audio_bitrate
                resampler = FollowingResampler(format="fltp", layout="stereo", rate=48_000)
            streams = [video_in] + ([audio_in] if audio_in is not None else [])
            next_index = 0
            for packet in source.demux(streams):
                for frame in packet.decode():
                    if packet.stream is video_in:
                        next_index = _encode_video(out, video_out, frame, plan, fps, next_index)
                    else:
                        # only the audio stream is demuxed besides the video one
                        assert resampler is not None and audio_out is not None
                        assert isinstance(frame, av.AudioFrame)
                        for resampled in resampler.resample(frame):
                            resampled.pts = None
                            out.mux(audio_out.encode(resampled))
            out.mux(video_out.encode())
            if audio_out is not None:
                out.mux(audio_out.encode())
        tmp.replace(out_path)
    except FFmpegError as exc:
        raise Rejected("corrupt", f"{type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


_TURNS = {90: -1, 180: 2, 270: 1}  # clockwise degrees -> np.rot90 k (counter-clockwise turns)


def _encode_video(out: Any, stream: Any, frame: Any, plan: RenditionPlan, fps: Fraction,
                  next_index: int) -> int:
    """Encode `frame` if it starts a new output frame slot (caps the frame rate)."""
    index = math.floor(float(frame.time or 0.0) * fps + 1e-6)
    if index < next_index:
        return next_index  # a source frame between two output frames: dropped
    if plan.rotation in _TURNS:
        pixels = np.rot90(frame.to_ndarray(format="rgb24"), _TURNS[plan.rotation])
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
    scaled = frame.reformat(width=plan.width, height=plan.height, format="yuv420p")
    scaled.pts, scaled.time_base = index, 1 / fps
    out.mux(stream.encode(scaled))
    return index + 1


def render_web_rendition(path: Path, out_path: Path, spec: RenditionSpec) -> dict[str, Any]:
    """Plan from the probe, then transcode into `out_path` unless the source already fits.

    Returns the plan; `action == "skip"` with a source that fits means the original itself is
    the web rendition (the caller links it), with mode `never` there is none."""
    plan = plan_rendition(probe_av(path), spec)
    if plan.action == "skip" and plan.width and not moov_first(path):
        plan = RenditionPlan("transcode", "needs transcoding: not fast-start", plan.width,
                             plan.height, plan.fps, plan.rotation)
    if plan.action == "transcode":
        transcode(path, out_path, plan, spec)
    return {"action": plan.action, "reason": plan.reason, "width": plan.width,
            "height": plan.height, "fps": plan.fps, "rotation": plan.rotation}


def moov_first(path: Path) -> bool:
    """True when the MP4's index (moov) comes before its media data (mdat): fast start."""
    with open(path, "rb") as handle:
        while header := handle.read(8):
            if len(header) < 8:
                return False
            size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size == 1:
                size = int.from_bytes(handle.read(8), "big") - 8
            elif size < 8:
                return False
            handle.seek(size - 8, 1)
    return False
