"""Audio previews: the first `audio.preview.seconds` as AAC in M4A, 48 kHz stereo."""

from media_assets.codec.derivatives import Derivative

DERIVATIVE = Derivative(
    name="audio_preview",
    asset="audio_preview",
    media_kinds=("audio",),
    formats=frozenset({"m4a"}),
    code_version="audio_preview-1",
    description="The first seconds of each audio file as AAC in M4A.",
    stage="audio_preview",
    specs_to_keep=lambda policy, cid: (policy.audio.preview,),
    current_spec=lambda policy, cid: policy.audio.preview,
    render=None,
    in_pass=False,
)
