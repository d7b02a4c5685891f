"""The image renderer shared by the thumbnail and the preview: one decode of the original,
reduced to the policy's largest long edge, then every requested spec; each output checked
from its header (format, long edge), and decoded completely when the context asks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from media_assets.codec.derivatives import Output, RenderContext, Spec
from media_assets.codec.image_render import render_specs
from media_assets.core.policy import DerivativeSpec


def render_image_derivatives(source: Path, media_kind: str, specs: Sequence[Spec],
                             out_dir: Path, context: RenderContext) -> list[Output]:
    image_specs = [s for s in specs if isinstance(s, DerivativeSpec)]
    rendered = render_specs(source, image_specs, out_dir, context.max_pixels,
                            draft_edge=context.draft_edge)
    by_hash = {s.spec_hash: s for s in image_specs}
    return [Output(derivative=r.name, spec_hash=r.spec_hash, path=str(r.path), width=r.width,
                   height=r.height, bytes=r.bytes, render_ms=r.elapsed_ms,
                   problem=image_output_problem(r.path, by_hash[r.spec_hash],
                                                full=context.full_check))
            for r in rendered]


def image_output_problem(path: Path, spec: DerivativeSpec, *, full: bool = False) -> str | None:
    """What is wrong with an image output against its spec (None: it conforms). The header
    says format and size; `full` also decodes it (a JPEG every block, at 1/8 scale)."""
    try:
        with Image.open(path) as im:
            size, fmt = im.size, (im.format or "").lower()
            if full:
                im.draft(im.mode, (64, 64))  # JPEG: decode every block at 1/8 scale
                im.load()
    except Exception as exc:  # noqa: BLE001 - any failure to read it back is the finding
        return f"does not decode: {exc}"
    if fmt != spec.format:
        return f"format {fmt}, spec says {spec.format}"
    if max(size) > spec.long_edge:
        return f"long edge {max(size)} > {spec.long_edge}"
    return None
