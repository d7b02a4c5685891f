"""What the asset checks verify about video and audio derivatives: each function returns a
problem in words, or None when the derivative is sound. Pure PyAV, no Dagster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
from av.error import FFmpegError
from PIL import Image

from media_assets.codec.av_probe import probe_av
from media_assets.core.errors import Rejected
from media_assets.core.policy import AudioPreviewSpec, RenditionSpec, WaveformSpec

DURATION_TOLERANCE = 0.5  # seconds


def inspect_rendition(path: Path, source: dict[str, Any], spec: RenditionSpec) -> str | None:
    """Decodes to the end, audio iff the source has audio, same duration, long edge bound."""
    try:
        info = probe_av(path)
        frames = _decode_all(path)
    except Rejected as exc:
        return f"does not decode: {exc.detail}"
    if not info["video"] or frames == 0:
        return "no video frames"
    if bool(info["audio"]) != bool(source["audio"]):
        return f"audio streams: {len(info['audio'])}, source has {len(source['audio'])}"
    problem = _duration_problem(info["duration_seconds"], source["duration_seconds"])
    if problem:
        return problem
    video = info["video"][0]
    long_edge = max(video["width"], video["height"])
    if long_edge > spec.long_edge:
        return f"long edge {long_edge} > {spec.long_edge}"
    return None


def inspect_audio_preview(path: Path, source_seconds: float | None,
                          spec: AudioPreviewSpec) -> str | None:
    """An AAC preview as long as the spec says (or the whole source, when shorter)."""
    try:
        info = probe_av(path)
    except Rejected as exc:
        return f"does not decode: {exc.detail}"
    if not info["audio"] or info["audio"][0]["codec"] != "aac":
        return "no AAC audio stream"
    expected = min(spec.seconds, source_seconds or spec.seconds)
    return _duration_problem(info["duration_seconds"], expected)


def inspect_waveform(data_path: Path, picture_path: Path, spec: WaveformSpec) -> str | None:
    try:
        envelope = json.loads(Path(data_path).read_text())
    except (OSError, ValueError) as exc:
        return f"waveform data unreadable: {exc}"
    counts = {len(envelope.get("min", [])), len(envelope.get("max", [])),
              envelope.get("buckets")}
    if counts != {spec.buckets}:
        return f"bucket counts {sorted(counts, key=str)}, spec says {spec.buckets}"
    try:
        with Image.open(picture_path) as picture:
            picture.load()
            size = picture.size
    except OSError as exc:
        return f"waveform picture does not decode: {exc}"
    if size != (spec.width, spec.height):
        return f"waveform picture {size}, spec says {(spec.width, spec.height)}"
    return None


def _duration_problem(actual: float | None, expected: float | None) -> str | None:
    if actual is None or expected is None:
        return None if actual == expected else f"duration {actual}, expected {expected}"
    if abs(actual - expected) > DURATION_TOLERANCE:
        return f"duration {actual:.2f} s, expected {expected:.2f} s"
    return None


def _decode_all(path: Path) -> int:
    """Decode every video frame (the check's proof that the rendition plays to the end)."""
    frames = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for _ in container.decode(stream):
                frames += 1
    except FFmpegError as exc:
        raise Rejected("corrupt", str(exc.strerror)) from exc
    return frames
