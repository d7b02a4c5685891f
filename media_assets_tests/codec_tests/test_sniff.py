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


def test_every_accepted_image_format_declares_its_pixels_from_the_header():
    """The sensor's header probe reads the declared size of WebP (VP8, VP8L, VP8X) and HEIF /
    AVIF (`ispe`) in Python, like JPEG, PNG, GIF, TIFF and BMP, so a huge image of any
    format goes to the heavy lane."""
    from media_assets.codec.sniff import declared_pixels

    cases = [("WEBP", "RGB", {}), ("WEBP", "RGB", {"lossless": True}),
             ("WEBP", "RGBA", {}), ("AVIF", "RGB", {}), ("HEIF", "RGB", {}),
             ("JPEG", "RGB", {}), ("PNG", "RGB", {}), ("GIF", "P", {}), ("TIFF", "RGB", {}),
             ("BMP", "RGB", {})]
    for fmt, mode, params in cases:
        data = _encoded_at(fmt, mode, (640, 480), **params)
        declared = declared_pixels(data[:65536])
        assert declared is not None and abs(declared - 640 * 480) <= 640 * 8, (fmt, declared)


def _encoded_at(fmt: str, mode: str, size: tuple[int, int], **params) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, fmt, **params)
    return buffer.getvalue()


def test_a_144_megapixel_webp_goes_to_the_heavy_lane():
    from media_assets.core.policy import Batching
    from media_assets.operations.batching import classify_lane

    small = bytearray(_encoded_at("WEBP", "RGBA", (64, 48)))  # alpha: a VP8X header
    assert small[12:16] == b"VP8X"
    small[24:27] = (12000 - 1).to_bytes(3, "little")  # the canvas a 144 MP photo declares
    small[27:30] = (12000 - 1).to_bytes(3, "little")
    lane = classify_lane(bytes(small), len(small), Batching())
    assert lane.lane == "heavy" and "144000000" in lane.why
