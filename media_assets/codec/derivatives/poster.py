"""Posters: a video's first keyframe after `video.poster_at` of its duration, upright, or an
audio file's cover art (nothing when it has none); written with the image thumbnail spec."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from media_assets.codec.derivatives import Derivative, Output, RenderContext, Spec
from media_assets.codec.derivatives.image import image_output_problem
from media_assets.codec.poster import render_still
from media_assets.core.policy import DerivativeSpec


def render_poster(source: Path, media_kind: str, specs: Sequence[Spec], out_dir: Path,
                  context: RenderContext) -> list[Output]:
    image_specs = [s for s in specs if isinstance(s, DerivativeSpec)]
    by_hash = {s.spec_hash: s for s in image_specs}
    rendered = render_still(source, media_kind, image_specs, out_dir / "poster",
                            context.poster_at)
    return [Output(derivative=r.name, spec_hash=r.spec_hash, path=str(r.path), width=r.width,
                   height=r.height, bytes=r.bytes, render_ms=r.elapsed_ms,
                   problem=image_output_problem(r.path, by_hash[r.spec_hash],
                                                full=context.full_check))
            for r in rendered]


DERIVATIVE = Derivative(
    name="thumbnail",
    asset="poster",
    media_kinds=("video", "audio"),
    formats=frozenset({"webp"}),
    code_version="poster-1",
    description="The thumbnail of each video (the first keyframe after `video.poster_at` of "
                "its duration, upright) and of each audio file with embedded cover art; same "
                "spec as image thumbnails.",
    stage="poster",
    specs_to_keep=lambda policy, cid: policy.specs_to_keep("thumbnail", cid),
    current_spec=lambda policy, cid: policy.derivative_for("thumbnail", cid),
    render=render_poster,
)
