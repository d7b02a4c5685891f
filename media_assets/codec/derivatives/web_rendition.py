"""Web renditions of videos: H.264 + AAC fast-start MP4, long edge and frame rate capped,
rotation baked in (policy `video.rendition`). Its own op: a `transcode` pool slot each."""

from media_assets.codec.derivatives import Derivative

DERIVATIVE = Derivative(
    name="web_rendition",
    asset="web_rendition",
    media_kinds=("video",),
    formats=frozenset({"mp4"}),
    code_version="web_rendition-1",
    description="Each video as H.264 + AAC in a fast-start MP4.",
    stage="web_rendition",
    specs_to_keep=lambda policy, cid: (policy.video.rendition,),
    current_spec=lambda policy, cid: policy.video.rendition,
    render=None,
    in_pass=False,
)
