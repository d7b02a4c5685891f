"""Types come from magic bytes, never from names."""

import io

import pillow_heif
import pytest
from PIL import Image, features

from media_assets.codec.sniff import sniff


def encoded(fmt: str, mode: str = "RGB", **params) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (32, 24), "red").save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.mark.parametrize(("fmt", "mode", "expected"), [
    ("JPEG", "RGB", "jpeg"), ("PNG", "RGBA", "png"), ("WEBP", "RGB", "webp"),
    ("GIF", "P", "gif"), ("TIFF", "RGB", "tiff"), ("BMP", "RGB", "bmp"),
])
def test_common_image_types_are_recognised(fmt, mode, expected):
    assert sniff(encoded(fmt, mode)).type == expected
    assert sniff(encoded(fmt, mode)).kind == "image"


@pytest.mark.skipif(not pillow_heif.libheif_info().get("HEIF"), reason="no HEIF encoder")
def test_heic_is_recognised():
    pillow_heif.register_heif_opener()
    assert sniff(encoded("HEIF")) == sniff(encoded("HEIF"))
    assert sniff(encoded("HEIF")).type in {"heic", "heif"}


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_is_recognised():
    assert sniff(encoded("AVIF")).type == "avif"


def test_video_audio_and_unknown_content():
    mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
    assert sniff(mp4).kind == "video"
    assert sniff(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64).kind == "audio"
    assert sniff(b"just some notes\n").kind == "other"
    assert sniff(b"").type is None
