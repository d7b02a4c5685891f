"""Posters: a video's first keyframe after `video.poster_at` of its duration, upright, or an
audio file's cover art; written with the image thumbnail spec."""

from media_assets.codec.derivatives import Derivative

DERIVATIVE = Derivative(
    name="thumbnail",
    asset="poster",
    media_kinds=("video", "audio"),
    formats=frozenset({"webp"}),
    code_version="poster-1",
    description="The thumbnail of each video (a representative keyframe, upright) and of "
                "each audio file with embedded cover art; same spec as image thumbnails.",
    stage="poster",
    specs_to_keep=lambda policy, cid: policy.specs_to_keep("thumbnail", cid),
    current_spec=lambda policy, cid: policy.derivative_for("thumbnail", cid),
    render=None,
    in_pass=False,
)
