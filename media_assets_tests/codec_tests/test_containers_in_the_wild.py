"""Containers the magic-byte library misses, as real uploads have them: each is recognised
by its header and then goes through the whole chain `ok` (made here by byte surgery on files
PyAV and Pillow write, so offsets inside stay valid)."""

import io
from pathlib import Path

import pytest
from PIL import Image

from media_assets.codec.file_pass import FileJob, process_file
from media_assets.codec.sniff import sniff
from media_assets.core.policy import Policy
from media_assets.samples.av import write_audio, write_video


def through_the_chain(tmp_path: Path, name: str, data: bytes):
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    inbox.mkdir(exist_ok=True)
    staging.mkdir(exist_ok=True)
    (inbox / name).write_bytes(data)
    job = FileJob(source=str(inbox / name), staging_dir=str(staging), policy=Policy(),
                  intake=True, inbox_root=str(inbox),
                  metadata_kinds=frozenset({"image", "video", "audio"}),
                  derivative_assets=("thumbnails", "previews", "poster"))
    return process_file(job, str(tmp_path / "out"))


def test_a_bigtiff_is_an_image(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 40, 40)).save(buffer, "TIFF", big_tiff=True)
    data = buffer.getvalue()
    assert data[:4] == b"II+\x00" and sniff(data[:65536]).type == "tiff"
    result = through_the_chain(tmp_path, "scan.tif", data)
    assert result.failure is None and result.kind == "image"
    assert {o.derivative for o in result.outputs} == {"thumbnail", "preview"}


def test_a_quicktime_movie_without_a_leading_ftyp_is_a_video(tmp_path):
    clip = write_video(tmp_path / "clip.mov", format="mov", size=(160, 120))
    data = clip.read_bytes()
    assert data[4:8] == b"ftyp"
    # an old QuickTime file: the same first atom, but `wide` instead of `ftyp` (same size,
    # so every offset in the movie stays right)
    surgery = data[:4] + b"wide" + data[8:]
    assert sniff(surgery[:65536]).type == "mov"
    result = through_the_chain(tmp_path, "old.mov", surgery)
    assert result.failure is None and result.kind == "video"


def test_an_ebml_header_with_an_eight_byte_size_is_still_webm(tmp_path):
    data = write_video(tmp_path / "clip.webm", codec="libvpx-vp9", audio=None,
                       size=(160, 120)).read_bytes()
    assert data[:4] == b"\x1a\x45\xdf\xa3" and data[4] & 0x80  # a 1-byte size
    size = data[4] & 0x7F
    wide = data[:4] + b"\x01" + size.to_bytes(7, "big") + data[5:]  # the same, in 8 bytes
    assert sniff(wide[:65536]).type == "webm"
    result = through_the_chain(tmp_path, "wide.webm", wide)
    assert result.failure is None and result.kind == "video"


@pytest.mark.parametrize("junk", [b"\x00" * 4000, b"JUNK" * 500])
def test_an_mp3_behind_padding_or_junk_is_audio(tmp_path, junk):
    data = write_audio(tmp_path / "tone.mp3", "libmp3lame", seconds=2.0).read_bytes()
    if data[:3] == b"ID3":  # keep the frames only: the junk goes where the tag was
        data = data[10 + sum((b & 0x7F) << 7 * (3 - i) for i, b in enumerate(data[6:10])):]
    assert sniff(junk + data).type == "mp3"
    result = through_the_chain(tmp_path, "tone.mp3", junk + data)
    assert result.failure is None and result.kind == "audio"


def test_a_rejected_format_is_named_for_what_it_is(tmp_path):
    """Valid media outside the formats processed: the reason says what it was recognised as,
    not that it is no media at all; a format the policy leaves out says so."""
    flv = write_video(tmp_path / "clip.flv", codec="flv", format="flv", audio=None)
    result = through_the_chain(tmp_path, "clip.flv", flv.read_bytes())
    assert (result.failure.reason, result.failure.detail) == (
        "unsupported_type", "recognised as FLV video; not among the formats this pipeline "
                            "processes")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    (inbox / "a.gif").write_bytes(gif.getvalue())
    no_gif = Policy().model_copy(update={"limits": Policy().limits.model_copy(
        update={"allowed_types": ("jpeg", "png")})})
    result = process_file(FileJob(source=str(inbox / "a.gif"), staging_dir=str(staging),
                                  policy=no_gif, intake=True, inbox_root=str(inbox),
                                  metadata_kinds=frozenset({"image"})), str(tmp_path / "o2"))
    assert result.failure.detail == ("recognised as GIF image; not among the policy's allowed "
                                     "formats (limits.allowed_types)")
