"""Probe and validate video and audio files with PyAV (no ffmpeg binary): container,
streams, rotation, colour, tags, and whether the main stream actually decodes. No Dagster."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.error import FFmpegError
from av.stream import Disposition

from media_assets.core.errors import Rejected

# Transfer characteristics that mean HDR (ITU-T H.273): PQ and HLG.
HDR_TRANSFERS = {16: "pq", 18: "hlg"}


def probe_av(path: Path, *, decode: bool = True) -> dict[str, Any]:
    """Container, duration, bit rate, tags and every audio/video stream of a media file.

    Reads headers plus, for video, one decoded frame (the display rotation lives in the
    frames' side data) unless `decode` is false (headers only: rotation None). Raises
    `Rejected` for empty, unreadable or stream-less files.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise Rejected("empty", f"{path.name} has 0 bytes")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise Rejected("corrupt", _describe(exc)) from exc
    with container:
        # a stream FFmpeg has no decoder for has no codec context: it cannot be used
        video = [s for s in container.streams.video if s.codec_context is not None
                 and not s.disposition & Disposition.attached_pic]
        audio = [s for s in container.streams.audio if s.codec_context is not None]
        if not video and not audio:
            raise Rejected("corrupt", "no audio or video stream")
        tags = {k.lower(): v for k, v in container.metadata.items()}
        return {
            "container": container.format.name,
            "duration_seconds": _seconds(container.duration),
            "bit_rate": container.bit_rate or None,
            "video": [_video(container, s, decode) for s in video],
            "audio": [_audio(s) for s in audio],
            "has_cover_art": any(s.disposition & Disposition.attached_pic
                                 for s in container.streams.video),
            "creation_time": tags.get("creation_time"),
            "title": tags.get("title"), "artist": tags.get("artist"),
            "album": tags.get("album"),
            "tags": tags,
        }


def _describe(exc: Exception) -> str:
    """The error without the (temporary) file name FFmpeg puts in its message."""
    return f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"


def _seconds(duration: int | None) -> float | None:
    return round(duration / av.time_base, 3) if duration else None


def _rate(rate: Fraction | None) -> float | None:
    return round(float(rate), 3) if rate else None


def _video(container: Any, stream: Any, decode: bool = True) -> dict[str, Any]:
    context = stream.codec_context
    transfer = int(context.color_trc or 0)
    return {
        "codec": context.codec.canonical_name,
        "profile": stream.profile,
        "pixel_format": context.pix_fmt,
        "width": context.width,
        "height": context.height,
        "frame_rate": _rate(stream.average_rate or stream.guessed_rate),
        "variable_frame_rate": bool(stream.average_rate and stream.base_rate
                                    and stream.average_rate != stream.base_rate),
        "rotation": _rotation(container, stream) if decode else None,
        "frames": stream.frames or None,
        "color_transfer": transfer or None,
        "color_primaries": int(context.color_primaries or 0) or None,
        "hdr": HDR_TRANSFERS.get(transfer),
        "bit_rate": context.bit_rate or None,
    }


def _rotation(container: Any, stream: Any) -> int:
    """Clockwise degrees to turn the stored frames to display them upright (0/90/180/270)."""
    try:
        for frame in container.decode(stream):
            return int(round(-frame.rotation)) % 360
    except FFmpegError:
        return 0  # undecodable video: the decode step quarantines it, not the probe
    return 0


def _audio(stream: Any) -> dict[str, Any]:
    context = stream.codec_context
    return {
        "codec": context.codec.canonical_name,
        "channels": context.channels,
        "layout": context.layout.name if context.layout else None,
        "sample_rate": context.sample_rate,
        "bit_rate": context.bit_rate or None,
    }


def validate_av(path: Path, max_duration_seconds: float, max_pixels: int, *,
                max_frames: int | None = None
                ) -> tuple[str, int | None, int | None, float | None]:
    """(kind, display width, display height, duration) of a decodable video or audio file.

    Kind is 'video' when a real (non cover-art) video stream exists, else 'audio'. The
    declared duration, pixels and frame count are checked on the headers, before any frame
    is decoded; then the first frame of the main stream must decode: a header-only or
    truncated file is `Rejected`."""
    info = probe_av(path, decode=False)
    duration = info["duration_seconds"]
    if duration is not None and duration > max_duration_seconds:
        raise Rejected("too_long", f"{duration:.0f} s > limit {max_duration_seconds:.0f} s")
    if info["video"]:
        video = info["video"][0]
        width, height = video["width"], video["height"]
        if width * height > max_pixels:
            raise Rejected("too_many_pixels", f"{width}x{height} > {max_pixels} pixels")
        frames = video["frames"] or round((duration or 0) * (video["frame_rate"] or 0))
        if max_frames is not None and frames > max_frames:
            raise Rejected("too_many_frames", f"{frames:,} frames > limit {max_frames:,}")
        if _first_frame(path, "video") in (90, 270):
            width, height = height, width
        return "video", width, height, duration
    _first_frame(path, "audio")
    return "audio", None, None, duration


def _first_frame(path: Path, kind: str) -> int:
    """Decode the first frame of the main `kind` stream; its display rotation (video)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            usable = [s for s in getattr(container.streams, kind) if s.codec_context is not None
                      and not s.disposition & Disposition.attached_pic]
            if not usable:
                raise Rejected("corrupt", f"no decodable {kind} stream")
            for frame in container.decode(usable[0]):
                return int(round(-frame.rotation)) % 360 if kind == "video" else 0
    except FFmpegError as exc:
        raise Rejected("corrupt", f"{kind} does not decode: {_describe(exc)}") from exc
    raise Rejected("corrupt", f"no decodable {kind} frames")
