"""Audio previews: the first `audio.preview.seconds` as AAC in M4A, 48 kHz stereo."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from media_assets.codec.audio_preview import render_audio_preview
from media_assets.codec.av_inspect import inspect_audio_preview
from media_assets.codec.av_probe import probe_av
from media_assets.codec.derivatives import Derivative, Output, RenderContext, Spec
from media_assets.core.policy import AudioPreviewSpec


def render_preview(source: Path, media_kind: str, specs: Sequence[Spec], out_dir: Path,
                   context: RenderContext) -> list[Output]:
    outputs = []
    for spec in specs:
        assert isinstance(spec, AudioPreviewSpec)
        started = time.perf_counter()
        target = out_dir / f"audio_preview-{spec.spec_hash}.m4a"
        target.parent.mkdir(parents=True, exist_ok=True)
        render_audio_preview(source, target, spec.seconds, spec.bit_rate)
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        source_seconds = probe_av(source, decode=False).get("duration_seconds")
        outputs.append(Output(derivative=spec.name, spec_hash=spec.spec_hash,
                              path=str(target), width=None, height=None,
                              bytes=target.stat().st_size, render_ms=elapsed,
                              problem=inspect_audio_preview(target, source_seconds, spec)))
    return outputs


DERIVATIVE = Derivative(
    name="audio_preview",
    asset="audio_preview",
    media_kinds=("audio",),
    formats=frozenset({"m4a"}),
    code_version="audio_preview-1",
    description="The first `audio.preview.seconds` of each audio file as AAC in M4A, 48 kHz "
                "stereo.",
    stage="audio_preview",
    specs_to_keep=lambda policy, cid: (policy.audio.preview,),
    current_spec=lambda policy, cid: policy.audio.preview,
    render=render_preview,
)
