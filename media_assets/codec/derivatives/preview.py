"""Previews of images: ≤ 1440 px long edge, JPEG q80 (policy `derivatives.preview`)."""

from media_assets.codec.derivatives import Derivative
from media_assets.codec.derivatives.image import render_image_derivatives

DERIVATIVE = Derivative(
    name="preview",
    asset="previews",
    media_kinds=("image",),
    formats=frozenset({"jpeg"}),
    code_version="preview-1",
    description="Previews (policy default: 1440 px long edge, JPEG q80).",
    stage="derivatives",
    specs_to_keep=lambda policy, cid: policy.specs_to_keep("preview", cid),
    current_spec=lambda policy, cid: policy.derivative_for("preview", cid),
    render=render_image_derivatives,
)
