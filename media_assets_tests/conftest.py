"""Shared fixtures: generated media only, temporary folders, no network but loopback (the
S3 tests' own SeaweedFS)."""

import io
import os
import struct
import zlib

import pytest
from PIL import Image


@pytest.fixture
def jpeg_header() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (the data is not a valid image body)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + struct.pack(">I", len(idat) - 4) + idat
            + struct.pack(">I", zlib.crc32(idat)))


@pytest.fixture
def big_png_header() -> bytes:
    return png_declaring(20_000, 20_000)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """SeaweedFS on loopback for the whole session. Without `weed` the S3 tests skip, saying
    why, unless MEDIA_ASSETS_REQUIRE_S3=1 (CI), where they fail."""
    from media_assets_tests.s3_server import start_seaweedfs

    try:
        server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    except (FileNotFoundError, RuntimeError) as exc:
        if os.environ.get("MEDIA_ASSETS_REQUIRE_S3") == "1":
            pytest.fail(f"S3 test server unavailable but MEDIA_ASSETS_REQUIRE_S3=1: {exc}")
        pytest.skip(f"S3 test server unavailable: {exc}")
    yield server
    server.stop()
