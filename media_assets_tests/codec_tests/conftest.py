"""Fixtures for the image tests: a small sample set and a deliberately non-sRGB ICC profile."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from media_assets.samples import write_sample_images

# sRGB primaries as D50-adapted XYZ colorants, the form an ICC matrix/TRC profile stores them.
SRGB_RED = (0.4361, 0.2225, 0.0139)
SRGB_GREEN = (0.3851, 0.7169, 0.0971)
SRGB_BLUE = (0.1431, 0.0606, 0.7141)
D50 = (0.9642, 1.0, 0.8249)


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15f16(v) for v in xyz)


def _curve_tag(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256))


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc" + bytes(4) + struct.pack(">I", len(ascii_text)) + ascii_text
        + struct.pack(">IIHB", 0, 0, 0, 0) + bytes(67)
    )


def build_rgb_icc(
    description: str,
    red: tuple[float, float, float],
    green: tuple[float, float, float],
    blue: tuple[float, float, float],
    gamma: float = 2.2,
) -> bytes:
    """A minimal ICC v2 RGB display profile (matrix + gamma curves) with the given colorants."""
    tags = [
        (b"desc", _desc_tag(description)),
        (b"cprt", b"text" + bytes(4) + b"public domain\0"),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(red)),
        (b"gXYZ", _xyz_tag(green)),
        (b"bXYZ", _xyz_tag(blue)),
        (b"rTRC", _curve_tag(gamma)),
        (b"gTRC", _curve_tag(gamma)),
        (b"bTRC", _curve_tag(gamma)),
    ]
    table, data = b"", b""
    first_offset = 128 + 4 + 12 * len(tags)
    for signature, blob in tags:
        blob += bytes(-len(blob) % 4)
        table += signature + struct.pack(">II", first_offset + len(data), len(blob))
        data += blob
    body = struct.pack(">I", len(tags)) + table + data
    header = (
        struct.pack(">I", 128 + len(body)) + bytes(4) + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ " + bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0)
        + b"".join(_s15f16(v) for v in D50) + bytes(48)
    )
    assert len(header) == 128
    return header + body


@pytest.fixture(scope="session")
def swapped_rg_icc() -> bytes:
    """A non-sRGB profile whose red and green primaries are sRGB's green and red.

    Under it, stored pixel (255, 0, 0) means sRGB green, so a renderer that honours the profile
    turns it green, and one that ignores the profile leaves it red.
    """
    return build_rgb_icc("Swapped red-green test profile", SRGB_GREEN, SRGB_RED, SRGB_BLUE)


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample set at a small size, by file name."""
    dest = tmp_path_factory.mktemp("samples")
    return {path.name: path for path in write_sample_images(dest, size=(320, 240), seed=1)}
