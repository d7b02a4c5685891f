"""The still that represents a video or audio file: a video's poster frame (representative,
upright) or an audio file's embedded cover art, written with the image thumbnail spec so
every asset in the catalog has a thumbnail. Pure PyAV + Pillow, no Dagster."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
from av.error import FFmpegError
from av.stream import Disposition
from PIL import Image

from media_assets.codec.image_render import RenderedDerivative, write_derivatives, write_specs
from media_assets.core.errors import Rejected
from media_assets.core.policy import DerivativeSpec

# Clockwise display rotation -> the Pillow transpose that turns a frame upright.
_UPRIGHT = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180,
            270: Image.Transpose.ROTATE_90}


def poster_frame(path: Path, *, at_fraction: float = 0.1, max_frames: int = 120) -> Image.Image:
    """The first keyframe at or after `at_fraction` of the duration (not a black first frame),
    upright, as RGB. A forward seek lands on that keyframe and one frame is decoded; where
    the container cannot seek forward (or no keyframe follows), the frames after the previous
    keyframe are decoded instead, at most `max_frames` of them."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise Rejected("unsupported_type", "no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            duration = container.duration / av.time_base if container.duration else 0.0
            target = duration * at_fraction
            chosen = _keyframe_after(container, stream, target)
            if chosen is None:
                chosen = _scan_from_previous_keyframe(container, stream, target, max_frames)
            if chosen is None:
                raise Rejected("corrupt", "no decodable video frame")
            rotation = int(round(-chosen.rotation)) % 360
            image = chosen.to_image()
    except FFmpegError as exc:
        raise Rejected("corrupt", f"{type(exc).__name__}: {exc}") from exc
    if rotation in _UPRIGHT:
        image = image.transpose(_UPRIGHT[rotation])
    return image.convert("RGB")


def _keyframe_after(container: Any, stream: Any, target: float) -> Any:
    if target <= 0 or not stream.time_base:
        return None
    try:
        container.seek(int(target / stream.time_base), stream=stream, backward=False)
        frame = next(container.decode(stream), None)
    except FFmpegError:
        return None
    if frame is None or float(frame.time or 0.0) + 1e-3 < target:
        return None  # the demuxer seeks backward only, or nothing follows the target
    return frame


def _scan_from_previous_keyframe(container: Any, stream: Any, target: float,
                                 max_frames: int) -> Any:
    container.seek(int(target / stream.time_base) if target > 0 and stream.time_base else 0,
                   stream=stream, backward=True)
    chosen = None
    for count, frame in enumerate(container.decode(stream)):
        chosen = chosen or frame  # whatever we find first, if nothing better follows
        if float(frame.time or 0.0) >= target or count >= max_frames:
            return frame
    return chosen


def render_poster(path: Path, specs: Sequence[DerivativeSpec],
                  out_dir: Path) -> dict[str, RenderedDerivative]:
    """Write the poster frame with the image derivative specs (e.g. the thumbnail spec)."""
    return write_derivatives(poster_frame(path), specs, out_dir)


def cover_art(path: Path) -> Image.Image | None:
    """The embedded cover picture of an audio file (MP3 APIC, M4A covr, ...), if any."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            covers = [s for s in container.streams.video
                      if s.disposition & Disposition.attached_pic]
            if not covers:
                return None
            for packet in container.demux(covers[0]):
                data = bytes(packet)
                if data:
                    with Image.open(io.BytesIO(data)) as picture:
                        return picture.convert("RGB")
    except FFmpegError as exc:
        raise Rejected("corrupt", f"{type(exc).__name__}: {exc.strerror}") from exc
    except OSError:
        return None  # a cover that is not a picture: the file simply has no thumbnail
    return None


def render_still(path: Path, media_kind: str, specs: Sequence[DerivativeSpec], out_dir: Path,
                 at_fraction: float = 0.1) -> list[RenderedDerivative]:
    """A video's poster frame or an audio file's cover art (nothing when it has none), one
    result per spec."""
    if media_kind == "video":
        return write_specs(poster_frame(path, at_fraction=at_fraction), specs, out_dir)
    cover = cover_art(path)
    return write_specs(cover, specs, out_dir) if cover is not None else []
