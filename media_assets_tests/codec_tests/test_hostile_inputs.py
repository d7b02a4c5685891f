"""Every generated hostile file is refused at intake with its specific reason, from what it
declares (before any full decode); one small valid file of every supported type passes."""

from pathlib import Path

import pytest

from media_assets.codec.intake import stage_file
from media_assets.codec.structure import exif_problem, hostile_exif
from media_assets.core.policy import Limits
from media_assets_tests.hostile import _tiff_ifd_chain, write_good_set, write_hostile_set

LIMITS = Limits(max_file_bytes=64 * 1024**2, max_frames=10_000)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, Path], dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile")
    good = write_good_set(root / "good")
    return root, good, write_hostile_set(root / "bad", good)


def test_every_supported_type_has_a_good_and_a_truncated_sample(corpus):
    _, good, expected = corpus
    assert {Path(n).suffix for n in good} == {Path(n).suffix for n in expected
                                              if n.startswith("truncated")}
    assert len(good) == 20


def test_good_files_of_every_type_pass_intake(corpus, tmp_path):
    _, good, _ = corpus
    verdicts = {name: stage_file(str(path), str(tmp_path), LIMITS).rejection
                for name, path in good.items()}
    assert verdicts == dict.fromkeys(good)


def test_each_hostile_file_is_refused_at_intake_with_its_reason(corpus, tmp_path):
    root, _, expected = corpus
    got = {}
    for name in expected:
        staged = stage_file(str(root / "bad" / name), str(tmp_path), LIMITS)
        got[name] = staged.rejection[0] if staged.rejection else None
    assert got == expected


def test_exif_that_nests_is_hostile_one_that_loops_is_odd_and_a_camera_layout_is_sound():
    assert "nested" in hostile_exif(_tiff_ifd_chain(10))
    assert "loop" in exif_problem(_tiff_ifd_chain(2))
    assert hostile_exif(_tiff_ifd_chain(2)) is None  # bounded: kept, with a warning
    assert exif_problem(_tiff_ifd_chain(1)) is not None  # IFD0 pointing at itself
    from PIL import ExifTags, Image

    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Camera"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2020:01:01 00:00:00"
    exif.get_ifd(ExifTags.IFD.GPSInfo)[1] = "N"
    assert exif_problem(exif.tobytes()) is None


def test_the_sensor_parses_headers_only_with_python_parsers(corpus):
    """The sensor runs in the daemon: Pillow's Python header parsers, and our own for WebP,
    AVIF and HEIF (Pillow's are C: a crash there would take the daemon down)."""
    from media_assets.codec.sniff import declared_pixels

    _, good, _ = corpus
    pixels = {name: declared_pixels(path.read_bytes()[:65536]) for name, path in good.items()
              if name.endswith((".jpg", ".png", ".gif", ".tif", ".bmp", ".webp", ".avif",
                                ".heic"))}
    assert pixels == {"good.jpg": 1536, "good.png": 1536, "good.gif": 1536, "good.tif": 1536,
                      "good.bmp": 1536, "good.webp": 1536, "good.avif": 1536,
                      "good.heic": 4096}  # HEVC's coded size (64 x 64), cropped by `clap`


def test_a_camera_jpeg_whose_exif_loops_is_kept_with_a_metadata_warning(tmp_path):
    """A loop is bounded (every reader stops at it) and cameras have written them: the photo
    is processed, and the anomaly is recorded, not treated as an attack."""
    from media_assets.codec.file_pass import FileJob, process_file
    from media_assets.core.policy import Policy
    from media_assets_tests.hostile import jpeg_with_app

    looping = jpeg_with_app([(0xE1, b"Exif\x00\x00" + _tiff_ifd_chain(2))])
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    inbox.mkdir()
    staging.mkdir()
    (inbox / "camera.jpg").write_bytes(looping)
    result = process_file(FileJob(
        source=str(inbox / "camera.jpg"), staging_dir=str(staging), policy=Policy(),
        intake=True, inbox_root=str(inbox), metadata_kinds=frozenset({"image"}),
        derivative_assets=("thumbnails",)), str(tmp_path / "out"))
    assert result.failure is None and [o.derivative for o in result.outputs] == ["thumbnail"]
    [warning] = result.metadata["metadata_warnings"]
    assert warning.startswith("EXIF directories loop")
