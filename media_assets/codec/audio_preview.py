"""Audio previews: the first N seconds as AAC in M4A at a standard sample rate and layout
(pure PyAV, no Dagster). Streamed: memory does not grow with length."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from av.error import FFmpegError

from media_assets.codec.resample import FollowingResampler
from media_assets.core.errors import Rejected

PREVIEW_RATE = 48_000
PREVIEW_TIME_BASE = Fraction(1, PREVIEW_RATE)


def render_audio_preview(path: Path, out_path: Path, seconds: float = 30.0,
                         bit_rate: int = 128_000) -> float:
    """Write the first `seconds` of the first audio stream; returns the seconds written."""
    limit = int(seconds * PREVIEW_RATE)
    written = 0
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    try:
        with av.open(str(path), metadata_errors="ignore") as source:
            if not source.streams.audio:
                raise Rejected("unsupported_type", "no audio stream")
            with av.open(str(tmp), "w", format="ipod",
                         options={"movflags": "+faststart"}) as out:
                stream = out.add_stream("aac", rate=PREVIEW_RATE, layout="stereo")
                stream.bit_rate = bit_rate
                resampler = FollowingResampler(format="fltp", layout="stereo",
                                               rate=PREVIEW_RATE)
                for frame in source.decode(source.streams.audio[0]):
                    for chunk in resampler.resample(frame):
                        take = min(chunk.samples, limit - written)
                        if take < chunk.samples:
                            chunk = _head(chunk, take)
                        # counted in samples at the preview rate: a frame the resampler
                        # passed through unchanged still carries its source's time base
                        # (an MP3's 1/14112000, Matroska's 1/1000), which the muxer refuses
                        # or turns into a preview minutes long
                        chunk.pts, chunk.time_base = written, PREVIEW_TIME_BASE
                        written += take
                        out.mux(stream.encode(chunk))
                    if written >= limit:
                        break
                out.mux(stream.encode())
        if written == 0:
            raise Rejected("corrupt", "no audio samples")
        tmp.replace(out_path)
    except FFmpegError as exc:
        raise Rejected("corrupt", f"{type(exc).__name__}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return written / PREVIEW_RATE


def _head(frame: av.AudioFrame, samples: int) -> av.AudioFrame:
    """The first `samples` samples of a planar audio frame."""
    head = av.AudioFrame.from_ndarray(frame.to_ndarray()[:, :samples], format=frame.format.name,
                                      layout=frame.layout.name)
    head.sample_rate = frame.sample_rate
    return head
