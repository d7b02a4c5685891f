"""An audio file's peak envelope: min/max per bucket as JSON data and a PNG picture of it
(pure PyAV + numpy + Pillow, no Dagster). Memory stays bounded: audio is
decoded frame by frame and folded into fixed-size blocks as it streams."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.error import FFmpegError
from PIL import Image, ImageDraw

from media_assets.codec.resample import FollowingResampler
from media_assets.core.errors import Rejected
from media_assets.core.policy import WaveformSpec

BLOCK = 1024  # samples folded into one (min, max) pair while streaming


def peak_envelope(path: Path, buckets: int = 1000) -> dict[str, Any]:
    """Min and max sample value (-1..1, all channels mixed) in `buckets` equal time slices."""
    mins: list[float] = []
    maxs: list[float] = []
    carry = np.zeros(0, dtype=np.float32)
    sample_rate = 0
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise Rejected("unsupported_type", "no audio stream")
            stream = container.streams.audio[0]
            resampler = FollowingResampler(format="flt", layout="mono")
            for frame in container.decode(stream):
                sample_rate = frame.sample_rate
                for mono in resampler.resample(frame):
                    carry = np.concatenate([carry, mono.to_ndarray().reshape(-1)])
                    whole = len(carry) // BLOCK * BLOCK
                    if whole:
                        blocks = carry[:whole].reshape(-1, BLOCK)
                        mins.extend(blocks.min(axis=1).tolist())
                        maxs.extend(blocks.max(axis=1).tolist())
                        carry = carry[whole:]
    except FFmpegError as exc:
        raise Rejected("corrupt", f"{type(exc).__name__}: {exc}") from exc
    if len(carry):
        mins.append(float(carry.min()))
        maxs.append(float(carry.max()))
    if not mins:
        raise Rejected("corrupt", "no audio samples")
    edges = np.linspace(0, len(mins), buckets + 1).astype(int)
    low, high = np.array(mins), np.array(maxs)
    bucket_min = [float(low[a:max(b, a + 1)].min()) for a, b in zip(edges, edges[1:],
                                                                      strict=False)]
    bucket_max = [float(high[a:max(b, a + 1)].max()) for a, b in zip(edges, edges[1:],
                                                                       strict=False)]
    return {"buckets": buckets, "sample_rate": sample_rate,
            "min": [round(v, 4) for v in bucket_min], "max": [round(v, 4) for v in bucket_max]}


def envelope_image(envelope: dict[str, Any], size: tuple[int, int] = (1000, 120)) -> Image.Image:
    """A picture of the envelope: one vertical line per bucket, on white."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    middle, scale = height / 2, (height / 2) - 1
    count = envelope["buckets"]
    for index, (low, high) in enumerate(zip(envelope["min"], envelope["max"], strict=True)):
        x = int(index * width / count)
        draw.line([(x, middle - high * scale), (x, middle - low * scale)], fill=(40, 90, 200))
    return image


def render_waveform(path: Path, out_dir: Path, spec: WaveformSpec) -> dict[str, Path]:
    """Write `waveform.json` (the envelope) and `waveform.png` (its picture) into `out_dir`."""
    envelope = peak_envelope(path, spec.buckets)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data, picture = out_dir / "waveform.json", out_dir / "waveform.png"
    tmp = out_dir / ".waveform.json.tmp"
    tmp.write_text(json.dumps(envelope, separators=(",", ":")))
    os.replace(tmp, data)
    envelope_image(envelope, (spec.width, spec.height)).save(out_dir / ".waveform.png.tmp",
                                                            "PNG")
    os.replace(out_dir / ".waveform.png.tmp", picture)
    return {"json": data, "png": picture}
