"""Waveforms: each audio file's peak envelope (min/max per bucket) as JSON and a PNG."""

from media_assets.codec.derivatives import Derivative

DERIVATIVE = Derivative(
    name="waveform",
    asset="waveform",
    media_kinds=("audio",),
    formats=frozenset({"json", "png"}),
    code_version="waveform-1",
    description="Each audio file's peak envelope as JSON, and a PNG of it.",
    stage="waveform",
    specs_to_keep=lambda policy, cid: (policy.audio.waveform,),
    current_spec=lambda policy, cid: policy.audio.waveform,
    render=None,
    in_pass=False,
)
