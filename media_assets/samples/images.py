"""Synthesise a varied set of sample images (and a few bad files) to drop into an inbox.

Pure Pillow + numpy: no network and no dagster.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageDraw, ImageFilter, features

# Stored pixels are transformed by the inverse of the EXIF orientation, so that a viewer that
# applies the orientation sees the upright image.
_INVERSE_OF_ORIENTATION = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def synth_photo(
    size: tuple[int, int] = (1600, 1200), seed: int = 0, *, noise: float = 6.0
) -> Image.Image:
    """Camera-like RGB content: sky gradient, hills, shapes, soft edges and sensor noise."""
    width, height = size
    rng = np.random.default_rng(seed)
    # The sky is smooth, so compute it coarse and let bilinear scaling fill in.
    coarse = (max(2, width // 8), max(2, height // 8))
    y = np.linspace(0.0, 1.0, coarse[1], dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, coarse[0], dtype=np.float32)[None, :]
    sky = np.stack(
        [70 + 120 * y + 20 * x, 130 + 90 * y + 0 * x, 220 - 40 * y + 10 * x], axis=-1
    )
    image = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8), "RGB").resize(
        size, Image.Resampling.BILINEAR
    )
    draw = ImageDraw.Draw(image)
    for i in range(3):  # rolling hills
        base = height * (0.55 + 0.12 * i)
        phase = rng.uniform(0, 6.28)
        points = [
            (px, base + height * 0.06 * np.sin(px / width * 6.28 * (i + 1) + phase))
            for px in range(0, width + 16, 16)
        ]
        colour = (int(40 + 30 * i), int(110 - 15 * i), int(50 + 10 * i))
        draw.polygon([*points, (width, height), (0, height)], fill=colour)
    for _ in range(12):  # houses, trees, a sun
        cx, cy = rng.uniform(0, width), rng.uniform(height * 0.2, height * 0.9)
        r = rng.uniform(0.02, 0.08) * min(size)
        colour = tuple(int(c) for c in rng.integers(30, 240, 3))
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        else:
            draw.rectangle((cx - r, cy - r * 0.7, cx + r, cy + r * 0.7), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(radius=max(0.6, min(size) / 800)))
    if not noise:
        return image
    pixels = rng.standard_normal((height, width, 3), dtype=np.float32)
    pixels *= noise
    pixels += np.asarray(image)
    return Image.fromarray(np.clip(pixels, 0, 255, out=pixels).astype(np.uint8), "RGB")


def write_jpeg_with_orientation(
    path: Path, orientation: int, size: tuple[int, int] = (64, 32)
) -> None:
    """Write a JPEG whose UPRIGHT view has a red top-left quadrant and is blue elsewhere.

    ``size`` is the stored (un-rotated) size: for orientations 5..8 the upright image is
    ``size`` swapped. The stored pixels are the upright picture put through the inverse of
    ``orientation``, and the EXIF Orientation tag says how to undo that.
    """
    width, height = size
    upright_size = (height, width) if orientation >= 5 else (width, height)
    upright = Image.new("RGB", upright_size, (0, 0, 255))
    upright.paste((255, 0, 0), (0, 0, upright_size[0] // 2, upright_size[1] // 2))
    inverse = _INVERSE_OF_ORIENTATION[orientation]
    stored = upright.transpose(inverse) if inverse is not None else upright
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    stored.save(path, "JPEG", quality=95, subsampling="4:4:4", exif=exif.tobytes())


def _camera_exif() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "Synthetic Optics"
    exif[ExifTags.Base.Model] = "SO-1 Mark II"
    exif[ExifTags.Base.Software] = "media_assets.samples"
    exif[ExifTags.Base.DateTime] = "2024:05:17 14:05:00"
    exif[ExifTags.Base.Artist] = "Ada Example"
    exif[ExifTags.Base.Copyright] = "(c) 2024 Ada Example"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2024:05:17 14:03:22"
    sub[ExifTags.Base.OffsetTimeOriginal] = "+02:00"
    sub[ExifTags.Base.LensModel] = "SO 24-70mm f/2.8"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 22.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (4.0, 53.0, 42.0)
    return exif.tobytes()


def _logo(size: tuple[int, int]) -> Image.Image:
    width, height = size
    logo = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.ellipse((width * 0.1, height * 0.1, width * 0.9, height * 0.9), fill=(230, 80, 20, 255))
    window = (width * 0.35, height * 0.3, width * 0.65, height * 0.7)
    draw.rectangle(window, fill=(255, 255, 255, 160))
    return logo.filter(ImageFilter.GaussianBlur(radius=1))  # soft, partly transparent edges


def _animation(size: tuple[int, int], seed: int) -> list[Image.Image]:
    width, height = size
    frames = []
    for i, colour in enumerate([(220, 40, 40), (40, 180, 60), (40, 80, 220)]):
        frame = synth_photo(size, seed + i, noise=0).quantize(64)
        draw = ImageDraw.Draw(frame)
        x = width * (0.2 + 0.3 * i)
        draw.ellipse((x - width * 0.1, height * 0.4, x + width * 0.1, height * 0.6), fill=colour)
        frames.append(frame.convert("RGB"))
    return frames


def _sixteen_bit_scan(size: tuple[int, int], seed: int) -> Image.Image:
    width, height = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 65535, width, dtype=np.float64)[None, :].repeat(height, axis=0)
    ramp += rng.normal(0, 48, (height, width))  # faint scanner noise
    return Image.fromarray(np.clip(ramp, 0, 65535).astype(np.uint16))  # mode I;16


def _jpeg_bytes(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88, **params)
    return buffer.getvalue()


def write_sample_images(
    dest: Path, *, size: tuple[int, int] = (1600, 1200), seed: int = 0
) -> list[Path]:
    """Write the sample set into ``dest`` (created if needed) and return the paths written."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    small = (max(16, size[0] // 2), max(16, size[1] // 2))
    written: list[Path] = []

    def put(name: str, data: bytes) -> None:
        path = dest / name
        path.write_bytes(data)
        written.append(path)

    # A portrait shot: the sensor stores it sideways (landscape) and Orientation 6 says so.
    portrait = synth_photo((size[1], size[0]), seed)
    stored = portrait.transpose(_INVERSE_OF_ORIENTATION[6])
    put("camera_rotated.jpg", _jpeg_bytes(stored, exif=_camera_exif()))

    buffer = io.BytesIO()
    _logo(small).save(buffer, "PNG")
    put("logo_alpha.png", buffer.getvalue())

    put("print_cmyk.jpg", _jpeg_bytes(synth_photo(size, seed + 1).convert("CMYK")))

    buffer = io.BytesIO()
    first, *rest = _animation(small, seed + 2)
    first.save(buffer, "GIF", save_all=True, append_images=rest, duration=200, loop=0)
    put("animation.gif", buffer.getvalue())

    buffer = io.BytesIO()
    compression = "tiff_deflate" if features.check("libtiff") else None
    _sixteen_bit_scan(size, seed + 3).save(buffer, "TIFF", compression=compression)
    put("scan_16bit.tif", buffer.getvalue())

    buffer = io.BytesIO()
    synth_photo(size, seed + 4).save(buffer, "WEBP", quality=85)
    put("web.webp", buffer.getvalue())

    put("wrong_extension.png", _jpeg_bytes(synth_photo(small, seed + 5)))

    valid = _jpeg_bytes(synth_photo(small, seed + 6))
    put("broken.jpg", valid[: int(len(valid) * 0.4)])

    put("empty.jpg", b"")
    put("notes.txt", b"These are not pixels.\nAn unsupported file type for the inbox.\n")
    return written
