"""Waveforms: each audio file's peak envelope (min/max per bucket) as JSON and a PNG."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from media_assets.codec.av_inspect import inspect_waveform
from media_assets.codec.derivatives import Derivative, Output, RenderContext, Spec
from media_assets.codec.waveform import render_waveform
from media_assets.core.policy import WaveformSpec


def render_envelope(source: Path, media_kind: str, specs: Sequence[Spec], out_dir: Path,
                    context: RenderContext) -> list[Output]:
    outputs = []
    for spec in specs:
        assert isinstance(spec, WaveformSpec)
        started = time.perf_counter()
        written = render_waveform(source, out_dir / f"waveform-{spec.spec_hash}", spec)
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        outputs.append(Output(
            derivative=spec.name, spec_hash=spec.spec_hash, path=str(written["json"]),
            width=spec.width, height=spec.height, bytes=written["json"].stat().st_size,
            render_ms=elapsed, companions={"png": str(written["png"])},
            problem=inspect_waveform(written["json"], written["png"], spec)))
    return outputs


DERIVATIVE = Derivative(
    name="waveform",
    asset="waveform",
    media_kinds=("audio",),
    formats=frozenset({"json", "png"}),
    code_version="waveform-1",
    description="Each audio file's peak envelope (min/max per bucket) as JSON, and a PNG of "
                "it.",
    stage="waveform",
    specs_to_keep=lambda policy, cid: (policy.audio.waveform,),
    current_spec=lambda policy, cid: policy.audio.waveform,
    render=render_envelope,
)
