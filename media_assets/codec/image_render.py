"""Pure Pillow image work, rendering side: decode a file once and render every derivative.

Rendering decodes a file once, reduced as early as possible (JPEG DCT scaling via ``draft``,
an integer box ``reduce`` for other formats) to the ``draft_edge`` the caller names, then turns
it into upright 8-bit sRGB and derives every requested spec from that same image. Because the
decoded image depends only on ``draft_edge`` (not on which specs are asked for), a thumbnail
rendered alone is identical to one rendered together with the preview.
"""

from __future__ import annotations

import io
import secrets
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms

from media_assets.codec.images import (
    DECODE_ERRORS,
    SIXTEEN_BIT_MODES,
    UPRIGHT,
    has_alpha,
    header_exif,
    icc_description,
    open_image,
    orientation_of,
)
from media_assets.core.errors import Rejected
from media_assets.core.policy import DerivativeSpec

_srgb_profile: ImageCms.ImageCmsProfile | None = None


# --------------------------------------------------------------------------------------------
# Decoding for derivatives


def _srgb() -> ImageCms.ImageCmsProfile:
    global _srgb_profile
    if _srgb_profile is None:
        _srgb_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _srgb_profile


def _draft_scale(long_edge: int, draft_edge: int) -> int:
    """Largest JPEG DCT scale (1, 2, 4, 8) that keeps the long edge >= draft_edge."""
    for scale in (8, 4, 2):
        if -(-long_edge // scale) >= draft_edge:
            return scale
    return 1


def _band_extrema(im: Image.Image) -> tuple[float, float]:
    """(min, max) of a one-band image; Pillow's return type also covers multi-band images."""
    low, high = im.getextrema()
    assert not isinstance(low, tuple) and not isinstance(high, tuple)
    return low, high


def _to_8bit(im: Image.Image) -> Image.Image:
    """Any decoded mode -> one of L, LA, RGB, RGBA, CMYK (8 bits per channel), scaling depth."""
    mode = im.mode
    if mode in ("L", "RGB") and "transparency" in im.info:
        return im.convert("RGBA")  # a colour-keyed transparent colour (PNG tRNS)
    if mode in ("L", "LA", "RGB", "RGBA", "CMYK"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode in ("P", "PA"):
        return im.convert("RGBA" if has_alpha(im) else "RGB")
    if mode == "La":
        return im.convert("LA")
    if mode == "RGBa":
        return im.convert("RGBA")
    if mode == "RGBX":
        return im.convert("RGB")
    if mode in SIXTEEN_BIT_MODES or mode == "I":
        wide = im if mode == "I" else im.convert("I")
        low, high = _band_extrema(wide)
        if mode == "I" and high <= 255 and low >= 0:
            return wide.convert("L")  # an 8-bit range stored in 32 bits
        return wide.point(lambda v: v / 256).convert("L")  # 0..65535 -> 0..255, no clipping
    if mode == "F":
        low, high = _band_extrema(im)
        if high <= 1.0:
            return im.point(lambda v: v * 255).convert("L")
        return im.convert("L")
    if mode == "LAB":
        lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
        return ImageCms.profileToProfile(im, lab, _srgb(), outputMode="RGB")  # type: ignore[return-value]
    return im.convert("RGB")  # YCbCr, HSV, ...


def _is_srgb(description: str | None) -> bool:
    return description is not None and "srgb" in description.lower()


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """L/LA/RGB/RGBA/CMYK -> RGB or RGBA in sRGB; alpha kept only if something is see-through."""
    alpha = im.getchannel("A") if im.mode in ("LA", "RGBA") else None
    colour = im.convert(im.mode[:-1]) if alpha is not None else im
    converted: Image.Image | None = None
    if icc and not _is_srgb(icc_description(icc)):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(colour, source, _srgb(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # unusable or mismatched profile: fall back to a plain conversion
    if converted is None:
        converted = colour.convert("RGB")
    if alpha is not None and alpha.getextrema()[0] < 255:  # type: ignore[index]
        converted.putalpha(alpha)
    return converted


def _rejected_from(exc: BaseException) -> Rejected:
    message = f"{type(exc).__name__}: {exc}"
    return Rejected("truncated" if "truncated" in message.lower() else "corrupt", message)


def decode_for_derivatives(path: Path, draft_edge: int, max_pixels: int) -> Image.Image:
    """Decode once to an upright 8-bit sRGB RGB/RGBA image whose long edge is >= draft_edge.

    The result is reduced (JPEG DCT scaling, else an integer box reduce) only as far as
    ``draft_edge`` allows, so it depends on ``draft_edge`` and the file alone.
    """
    path = Path(path)
    with open_image(path, max_pixels) as im:
        orientation = orientation_of(header_exif(im))
        icc = im.info.get("icc_profile")
        long_edge = max(im.size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                im.seek(0)  # animations and multi-page files: the first frame only
                reduced = False
                scale = _draft_scale(long_edge, draft_edge)
                if im.format in ("JPEG", "MPO") and scale > 1:
                    width, height = im.size
                    box = (max(1, width // scale), max(1, height // scale))
                    reduced = im.draft(im.mode, box) is not None
                im.load()
                # what is left to turn: Pillow's TIFF plugin turns the pixels itself on
                # load and drops the tag (turning again would put them sideways)
                orientation = orientation_of(header_exif(im))
                frame: Image.Image = _to_8bit(im)
            except (*DECODE_ERRORS, ImageCms.PyCMSError) as exc:
                raise _rejected_from(exc) from exc
    if not reduced:
        factor = max(frame.size) // draft_edge
        if factor >= 2:
            frame = frame.reduce(factor)
    frame = _to_srgb(frame, icc)
    if orientation in UPRIGHT:
        frame = frame.transpose(UPRIGHT[orientation])
    frame.info = {}  # nothing of the source's EXIF/XMP/ICC may follow the pixels out
    return frame


# --------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class RenderedDerivative:
    """One derivative file written by render_derivatives."""

    name: str
    path: Path
    width: int
    height: int
    bytes: int
    format: str
    spec_hash: str = ""
    elapsed_ms: float = 0.0  # resize + encode of this spec (the shared decode excluded)


def _fit(image: Image.Image, long_edge: int) -> Image.Image:
    """Scale so the long edge is at most long_edge, keeping aspect; never upscales."""
    width, height = image.size
    if max(width, height) <= long_edge:
        return image
    ratio = long_edge / max(width, height)
    size = (
        long_edge if width >= height else max(1, round(width * ratio)),
        long_edge if height > width else max(1, round(height * ratio)),
    )
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _flatten_on_white(image: Image.Image) -> Image.Image:
    if image.mode != "RGBA":
        return image.convert("RGB") if image.mode != "RGB" else image
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background


def _write(image: Image.Image, spec: DerivativeSpec, target: Path) -> None:
    """Encode to a hidden temp file beside target, then atomically rename it into place."""
    tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(6)}")
    image.info = {}
    try:
        if spec.format == "jpeg":
            _flatten_on_white(image).save(
                tmp, "JPEG", quality=spec.quality, optimize=False, progressive=True,
                subsampling="4:2:0",
            )
        elif spec.format == "webp":
            image.save(tmp, "WEBP", quality=spec.quality, method=4)
        else:
            raise ValueError(f"unsupported derivative format {spec.format!r}")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def render_derivatives(
    path: Path,
    specs: Sequence[DerivativeSpec],
    out_dir: Path,
    max_pixels: int,
    *,
    draft_edge: int | None = None,
) -> dict[str, RenderedDerivative]:
    """Decode ``path`` once and write each spec; the results by derivative name.

    ``draft_edge`` (default: the largest requested long edge, never less) fixes how far the
    decode is reduced; pass the policy's largest long edge so that a derivative rendered alone
    is identical to the same derivative rendered with the others.
    """
    return {r.name: r for r in render_specs(path, specs, out_dir, max_pixels,
                                            draft_edge=draft_edge)}


def render_specs(
    path: Path,
    specs: Sequence[DerivativeSpec],
    out_dir: Path,
    max_pixels: int,
    *,
    draft_edge: int | None = None,
) -> list[RenderedDerivative]:
    """Like `render_derivatives`, for specs that may share a name (a canary and the stable
    spec of one derivative): one result per spec."""
    if not specs:
        return []
    largest = max(spec.long_edge for spec in specs)
    base = decode_for_derivatives(path, max(draft_edge or largest, largest), max_pixels)
    return write_specs(base, specs, Path(out_dir))


def write_derivatives(
    base: Image.Image, specs: Sequence[DerivativeSpec], out_dir: Path
) -> dict[str, RenderedDerivative]:
    """Write each spec from one decoded, upright 8-bit sRGB image; results by name."""
    return {r.name: r for r in write_specs(base, specs, out_dir)}


def write_specs(
    base: Image.Image, specs: Sequence[DerivativeSpec], out_dir: Path
) -> list[RenderedDerivative]:
    """Write each spec from one decoded, upright 8-bit sRGB image (largest spec first)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered: list[RenderedDerivative] = []
    for spec in sorted(specs, key=lambda s: s.long_edge, reverse=True):
        started = time.perf_counter()
        image = _fit(base, spec.long_edge)  # every spec from the decoded image, never a re-encode
        # A second spec of one name (a canary beside the stable spec) gets its hash appended.
        taken = any(r.name == spec.name for r in rendered)
        stem = f"{spec.name}-{spec.spec_hash}" if taken else spec.name
        target = out_dir / f"{stem}.{spec.extension}"
        _write(image, spec, target)
        rendered.append(RenderedDerivative(
            name=spec.name,
            path=target,
            width=image.width,
            height=image.height,
            bytes=target.stat().st_size,
            format=spec.format,
            spec_hash=spec.spec_hash,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
        ))
    return rendered
