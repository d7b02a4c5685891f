"""Staging a file: read once while hashing, then judged by its bytes and header."""

import hashlib
from pathlib import Path

from media_assets.codec.intake import stage_file
from media_assets.core.policy import Limits
from media_assets_tests.conftest import png_declaring


def stage(tmp_path: Path, name: str, data: bytes, **limits):
    source = tmp_path / name
    source.write_bytes(data)
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    return stage_file(str(source), str(staging), Limits(**limits))


def test_the_staged_copy_is_named_by_its_sha256_and_identical(tmp_path, jpeg_header):
    staged = stage(tmp_path, "photo.png", jpeg_header)  # the name lies: it is a JPEG
    assert staged.content_id == hashlib.sha256(jpeg_header).hexdigest()
    assert Path(staged.staged_path).read_bytes() == jpeg_header
    assert (staged.kind, staged.type, staged.extension) == ("image", "jpeg", "jpg")
    assert staged.rejection is None and (staged.width, staged.height) == (64, 48)


def test_bad_files_are_staged_with_a_verdict_instead_of_raising(tmp_path, jpeg_header):
    assert stage(tmp_path, "empty.jpg", b"").rejection[0] == "empty"
    assert stage(tmp_path, "notes.jpg", b"hello").rejection[0] == "unsupported_type"
    assert stage(tmp_path, "big.jpg", jpeg_header, max_file_bytes=10).rejection[0] == "too_large"
    assert stage(tmp_path, "a.jpg", jpeg_header,
                 allowed_types=("png",)).rejection[0] == "unsupported_type"
    bomb = stage(tmp_path, "bomb.png", png_declaring(30_000, 30_000), max_pixels=10_000_000)
    assert bomb.rejection[0] == "too_many_pixels"
    assert Path(bomb.staged_path).exists()  # the bytes are kept for quarantine
