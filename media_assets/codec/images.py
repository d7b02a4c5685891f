"""Pure Pillow image work: probe a header, read its metadata, render derivatives in one decode.

Nothing here imports dagster and nothing touches Pillow's process-wide knobs
(``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``): the pixel limit is the
caller's ``max_pixels``, checked on the header before any pixel is decoded.

Rendering decodes a file once, reduced as early as possible (JPEG DCT scaling via ``draft``,
an integer box ``reduce`` for other formats) to the ``draft_edge`` the caller names, then turns
it into upright 8-bit sRGB and derives every requested spec from that same image. Because the
decoded image depends only on ``draft_edge`` (not on which specs are asked for), a thumbnail
rendered alone is identical to one rendered together with the preview.
"""

from __future__ import annotations

import io
import re
import secrets
import struct
import threading
import time
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageCms, ImageFile, UnidentifiedImageError

from media_assets.codec.apple import apple_content_identifier
from media_assets.codec.structure import exif_anomaly
from media_assets.core.errors import Rejected, TransientError
from media_assets.core.policy import DerivativeSpec

# Pillow plugins we let parse untrusted files. Anything else (EPS runs Ghostscript, ...) is
# never opened: it fails identification and is rejected as corrupt.
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "DIB", "HEIF", "AVIF")
_TYPE_NAMES = {
    "JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "TIFF": "tiff",
    "BMP": "bmp", "DIB": "bmp", "AVIF": "avif",
}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}

# Errors Pillow raises for a header or pixel stream it cannot make sense of.
_DECODE_ERRORS = (
    UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, EOFError,
    IndexError, TypeError, KeyError, zlib.error,
    RuntimeError,  # the AVIF plugin's "Failed to decode image" (found by the fuzzer)
)

# EXIF orientation -> the transpose that makes the stored pixels upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}

_register_lock = threading.Lock()
_registered = False
_srgb_profile: ImageCms.ImageCmsProfile | None = None


def register_plugins() -> None:
    """Teach Pillow HEIC/HEIF (pillow-heif); AVIF is native in Pillow 13. Safe to call often."""
    global _registered
    if _registered:
        return
    with _register_lock:
        if not _registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _registered = True


# --------------------------------------------------------------------------------------------
# Probing and metadata (header only)


@dataclass(frozen=True)
class ImageProbe:
    """What an image header declares, read without decoding pixels."""

    format: str  # lower-case short type: jpeg png webp gif tiff bmp heic heif avif
    width: int  # stored (un-rotated) width
    height: int
    mode: str  # Pillow mode, e.g. "RGB", "CMYK", "I;16", "P", "RGBA"
    frames: int  # 1 for stills
    orientation: int  # EXIF orientation 1..8 (1 if absent)


@contextmanager
def _open(path: Path, max_pixels: int) -> Iterator[ImageFile.ImageFile]:
    """Open lazily (header only), mapping every failure to Rejected/TransientError."""
    register_plugins()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise TransientError(f"cannot stat {path}: {exc}") from exc
    if size == 0:
        raise Rejected("empty", f"{path.name} has 0 bytes")
    with warnings.catch_warnings():
        # Pillow's own bomb guard warns above MAX_IMAGE_PIXELS; our max_pixels decides instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(path, formats=_FORMATS)
        except Image.DecompressionBombError as exc:
            raise Rejected("too_many_pixels", str(exc)) from exc
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            raise TransientError(f"cannot read {path}: {exc}") from exc
        except _DECODE_ERRORS as exc:
            if "Decompressed data too large" in str(exc):  # a zlib bomb in a text/ICC chunk
                raise Rejected("hostile_metadata", str(exc)) from exc
            raise Rejected("corrupt", f"{type(exc).__name__}: {_without_path(exc, path)}") \
                from exc
        with im:
            width, height = im.size
            if width <= 0 or height <= 0:
                raise Rejected("corrupt", f"header declares {width} x {height}")
            if width * height > max_pixels:
                raise Rejected(
                    "too_many_pixels", f"{width} x {height} = {width * height} > {max_pixels}"
                )
            try:
                yield im
            except Image.DecompressionBombError as exc:  # raised by some plugins on seek/load
                raise Rejected("too_many_pixels", str(exc)) from exc


def _without_path(exc: BaseException, path: Path) -> str:
    """The error's words without the (temporary, staging) file name Pillow puts in them."""
    return str(exc).replace(f" '{path}'", "").replace(str(path), path.name)


def _short_type(im: Image.Image, path: Path) -> str:
    fmt = (im.format or "").upper()
    if fmt in _TYPE_NAMES:
        return _TYPE_NAMES[fmt]
    if fmt == "HEIF":
        with open(path, "rb") as fh:
            head = fh.read(12)
        if head[8:12] in (b"avif", b"avis"):
            return "avif"
        return "heic" if head[8:12] in _HEIC_BRANDS else "heif"
    return fmt.lower() or "unknown"


def _header_exif(im: Image.Image) -> Image.Exif:
    """EXIF known from the header; never triggers a pixel decode (PNG's getexif() would)."""
    try:
        return Image.Image.getexif(im)
    except _DECODE_ERRORS:
        return Image.Exif()


def _orientation(exif: Image.Exif) -> int:
    try:
        value = int(exif.get(ExifTags.Base.Orientation, 1))
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _stored_size(im: Image.Image, orientation: int) -> tuple[int, int]:
    """The pixels' size as stored. Pillow's TIFF plugin reports a 5–8 oriented TIFF's size
    already turned upright (and turns its pixels on load, dropping the tag); every other
    format reports the stored size and leaves the turning to us."""
    width, height = im.size
    if im.format == "TIFF" and orientation >= 5:
        return height, width
    return width, height


def _metadata_warnings(im: Image.Image) -> list[str]:
    raw = im.info.get("exif")
    anomaly = exif_anomaly(raw) if isinstance(raw, bytes) else None
    return [anomaly.text] if anomaly else []


def _frames(im: Image.Image) -> int:
    if (im.format or "").upper() == "MPO":
        return 1  # multi-picture JPEG: the first picture is the photo, the rest are extras
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except _DECODE_ERRORS:
        return 1


def probe_image(path: Path, max_pixels: int, *, max_frames: int | None = None) -> ImageProbe:
    """Identify an image from its header; raise Rejected if it is empty, corrupt or too big
    (pixels, or more than `max_frames` frames or pages)."""
    path = Path(path)
    with _open(path, max_pixels) as im:
        frames = _frames(im)
        if max_frames is not None and frames > max_frames:
            raise Rejected("too_many_frames", f"{frames:,} frames > limit {max_frames:,}")
        return ImageProbe(
            format=_short_type(im, path),
            width=im.width,
            height=im.height,
            mode=im.mode,
            frames=frames,
            orientation=_orientation(_header_exif(im)),
        )


def _clean_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    elif isinstance(value, tuple | list):
        value = "; ".join(str(v) for v in value)
    text = str(value).replace("\x00", "").strip()
    return text or None


_EXIF_DATETIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_EXIF_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def _iso_time(value: Any, offset: Any = None) -> str | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' (+ optional OffsetTime) -> ISO 8601, or None if bogus."""
    text = _clean_str(value)
    match = _EXIF_DATETIME.match(text or "")
    if not match:
        return None
    parts = [int(p) for p in match.groups()]
    try:
        datetime(*parts, tzinfo=UTC)  # validates ranges; the zone is only for the check
    except ValueError:
        return None
    iso = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}".format(*parts)
    off = _clean_str(offset)
    return iso + off if off and _EXIF_OFFSET.match(off) else iso


def _bit_depth(im: Image.Image) -> int | None:
    info_depth = im.info.get("bit_depth")
    if isinstance(info_depth, int) and info_depth > 0:
        return info_depth
    tags = getattr(im, "tag_v2", None)
    if tags is not None:
        bits = tags.get(258)  # BitsPerSample
        if isinstance(bits, tuple) and bits:
            bits = bits[0]
        if isinstance(bits, int) and bits > 0:
            return bits
    if im.mode == "1":
        return 1
    if im.mode in _SIXTEEN_BIT_MODES or im.mode.endswith(";16"):
        return 16
    if im.mode in ("I", "F"):
        return 32
    return 8


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or "transparency" in im.info


def _icc_description(icc: bytes | None) -> str | None:
    if not icc:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return _clean_str(ImageCms.getProfileDescription(profile))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None


def _dpi(im: Image.Image) -> list[float] | None:
    dpi = im.info.get("dpi")
    try:
        values = [round(float(v), 2) for v in dpi]  # type: ignore[union-attr]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    # TIFFs without a resolution unit report their placeholder 1 x 1 as dpi: not a real value.
    return values if len(values) == 2 and max(values) > 1 else None


MAKER_NOTE = 0x927C


def extract_metadata(path: Path, max_pixels: int) -> dict[str, Any]:
    """Technical and descriptive metadata from the header (no pixel decode), JSON-ready."""
    path = Path(path)
    with _open(path, max_pixels) as im:
        exif = _header_exif(im)
        try:
            exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
            gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        except _DECODE_ERRORS:
            exif_ifd, gps_ifd = {}, {}
        orientation = _orientation(exif)
        width, height = _stored_size(im, orientation)
        swapped = orientation >= 5
        frames = _frames(im)
        base, sub = ExifTags.Base, exif_ifd
        return {
            "format": _short_type(im, path),
            "width": width,
            "height": height,
            "display_width": height if swapped else width,
            "display_height": width if swapped else height,
            "mode": im.mode,
            "bit_depth": _bit_depth(im),
            "has_alpha": _has_alpha(im),
            "frames": frames,
            "animated": bool(getattr(im, "is_animated", False)) and frames > 1,
            "icc_profile": _icc_description(im.info.get("icc_profile")),
            "orientation": orientation,
            # odd but harmless metadata (a looping EXIF directory chain): kept, and said
            "metadata_warnings": _metadata_warnings(im),
            "camera_make": _clean_str(exif.get(base.Make)),
            "camera_model": _clean_str(exif.get(base.Model)),
            "lens_model": _clean_str(sub.get(base.LensModel)),
            "capture_time": _iso_time(
                sub.get(base.DateTimeOriginal), sub.get(base.OffsetTimeOriginal)
            )
            or _iso_time(exif.get(base.DateTime), sub.get(base.OffsetTime)),
            "gps_present": bool(gps_ifd),
            "artist": _clean_str(exif.get(base.Artist)),
            "copyright": _clean_str(exif.get(base.Copyright)),
            "software": _clean_str(exif.get(base.Software)),
            "dpi": _dpi(im),
            "content_identifier": apple_content_identifier(sub.get(MAKER_NOTE)),
        }


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
        return im.convert("RGBA" if _has_alpha(im) else "RGB")
    if mode == "La":
        return im.convert("LA")
    if mode == "RGBa":
        return im.convert("RGBA")
    if mode == "RGBX":
        return im.convert("RGB")
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
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
    if icc and not _is_srgb(_icc_description(icc)):
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
    with _open(path, max_pixels) as im:
        orientation = _orientation(_header_exif(im))
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
                orientation = _orientation(_header_exif(im))
                frame: Image.Image = _to_8bit(im)
            except (*_DECODE_ERRORS, ImageCms.PyCMSError) as exc:
                raise _rejected_from(exc) from exc
    if not reduced:
        factor = max(frame.size) // draft_edge
        if factor >= 2:
            frame = frame.reduce(factor)
    frame = _to_srgb(frame, icc)
    if orientation in _UPRIGHT:
        frame = frame.transpose(_UPRIGHT[orientation])
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
