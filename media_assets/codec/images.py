"""Pure Pillow image work, reading side: open a file safely, probe its header, read its
metadata (`codec/image_render.py` decodes once and renders the derivatives).

Nothing here imports dagster and nothing touches Pillow's process-wide knobs
(``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``): the pixel limit is the
caller's ``max_pixels``, checked on the header before any pixel is decoded.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageCms, ImageFile, UnidentifiedImageError

from media_assets.codec.apple import apple_content_identifier
from media_assets.codec.structure import exif_anomaly
from media_assets.core.errors import Rejected, TransientError

# Pillow plugins we let parse untrusted files. Anything else (EPS runs Ghostscript, ...) is
# never opened: it fails identification and is rejected as corrupt.
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP", "DIB", "HEIF", "AVIF")
_TYPE_NAMES = {
    "JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "TIFF": "tiff",
    "BMP": "bmp", "DIB": "bmp", "AVIF": "avif",
}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}

# Errors Pillow raises for a header or pixel stream it cannot make sense of.
DECODE_ERRORS = (
    UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, EOFError,
    IndexError, TypeError, KeyError, zlib.error,
    RuntimeError,  # the AVIF plugin's "Failed to decode image" (found by the fuzzer)
)

# EXIF orientation -> the transpose that makes the stored pixels upright.
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}

_register_lock = threading.Lock()
_registered = False


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
def open_image(path: Path, max_pixels: int) -> Iterator[ImageFile.ImageFile]:
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
        except DECODE_ERRORS as exc:
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


def header_exif(im: Image.Image) -> Image.Exif:
    """EXIF known from the header; never triggers a pixel decode (PNG's getexif() would)."""
    try:
        return Image.Image.getexif(im)
    except DECODE_ERRORS:
        return Image.Exif()


def orientation_of(exif: Image.Exif) -> int:
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
    except DECODE_ERRORS:
        return 1


def probe_image(path: Path, max_pixels: int, *, max_frames: int | None = None) -> ImageProbe:
    """Identify an image from its header; raise Rejected if it is empty, corrupt or too big
    (pixels, or more than `max_frames` frames or pages)."""
    path = Path(path)
    with open_image(path, max_pixels) as im:
        frames = _frames(im)
        if max_frames is not None and frames > max_frames:
            raise Rejected("too_many_frames", f"{frames:,} frames > limit {max_frames:,}")
        return ImageProbe(
            format=_short_type(im, path),
            width=im.width,
            height=im.height,
            mode=im.mode,
            frames=frames,
            orientation=orientation_of(header_exif(im)),
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
    if im.mode in SIXTEEN_BIT_MODES or im.mode.endswith(";16"):
        return 16
    if im.mode in ("I", "F"):
        return 32
    return 8


def has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or "transparency" in im.info


def icc_description(icc: bytes | None) -> str | None:
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
    with open_image(path, max_pixels) as im:
        exif = header_exif(im)
        try:
            exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
            gps_ifd = exif.get_ifd(ExifTags.IFD.GPSInfo)
        except DECODE_ERRORS:
            exif_ifd, gps_ifd = {}, {}
        orientation = orientation_of(exif)
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
            "has_alpha": has_alpha(im),
            "frames": frames,
            "animated": bool(getattr(im, "is_animated", False)) and frames > 1,
            "icc_profile": icc_description(im.info.get("icc_profile")),
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
