"""Thumbnails of images: ≤ 250 px long edge, WebP q80 (policy `derivatives.thumbnail`)."""

from media_assets.codec.derivatives import Derivative
from media_assets.codec.derivatives.image import render_image_derivatives

DERIVATIVE = Derivative(
    name="thumbnail",
    asset="thumbnails",
    media_kinds=("image",),
    formats=frozenset({"webp"}),
    code_version="thumbnail-1",
    description="Thumbnails (policy default: 250 px long edge, WebP q80).",
    stage="derivatives",
    specs_to_keep=lambda policy, cid: policy.specs_to_keep("thumbnail", cid),
    current_spec=lambda policy, cid: policy.derivative_for("thumbnail", cid),
    render=render_image_derivatives,
)
