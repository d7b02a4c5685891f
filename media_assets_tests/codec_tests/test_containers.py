"""The shared container reader: ISO-BMFF boxes, EBML elements and FLAC metadata blocks, read
from bytes in hand or from a file in bounded reads, within explicit bounds on count and
depth. Lenient walks end a level at what they cannot read; strict walks raise `Rejected`
with the reason. Test bytes are packed here or written with PyAV; nothing comes from the
network."""

from __future__ import annotations

import mmap
import struct
import time
from pathlib import Path

import pytest

from media_assets.codec.containers import (
    BufferSource,
    RangedSource,
    as_source,
    ebml,
    file_source,
    flac,
    isobmff,
)
from media_assets.core.errors import Rejected
from media_assets.samples.av import write_audio, write_video


def box(kind: bytes, body: bytes = b"", size: int | None = None) -> bytes:
    return struct.pack(">I4s", len(body) + 8 if size is None else size, kind) + body


def large_box(kind: bytes, body: bytes = b"", size: int | None = None) -> bytes:
    """A box with a 64-bit `largesize` (32-bit size 1)."""
    return struct.pack(">I4sQ", 1, kind, len(body) + 16 if size is None else size) + body


def listing(items: list[isobmff.Box]) -> list[tuple[bytes, int, int, int, int]]:
    return [(b.type, b.offset, b.header_len, b.size, b.depth) for b in items]


# ---- ISO-BMFF --------------------------------------------------------------------------------

NESTED = (box(b"ftyp", b"isom") + box(b"moov", box(b"mvhd", bytes(4))
                                      + box(b"trak", box(b"tkhd", bytes(2))
                                                     + box(b"mdia")))
          + box(b"mdat", bytes(10)))


def test_boxes_come_in_file_order_each_followed_by_the_children_of_types_to_descend():
    walked = list(isobmff.boxes(NESTED, descend={b"moov", b"trak"}))
    assert listing(walked) == [
        (b"ftyp", 0, 8, 12, 0), (b"moov", 12, 8, 46, 0), (b"mvhd", 20, 8, 12, 1),
        (b"trak", 32, 8, 26, 1), (b"tkhd", 40, 8, 10, 2), (b"mdia", 50, 8, 8, 2),
        (b"mdat", 58, 8, 18, 0)]
    moov = walked[1]
    assert (moov.body, moov.end, moov.stop, moov.overruns) == (20, 58, 58, False)
    assert walked[-1].end == len(NESTED)
    # without descending, only the top level; from a start offset, that level's boxes
    assert [b.type for b in isobmff.boxes(NESTED)] == [b"ftyp", b"moov", b"mdat"]
    assert [b.type for b in isobmff.boxes(NESTED, 20, 58)] == [b"mvhd", b"trak"]


def test_a_64_bit_largesize_box_has_a_16_byte_header():
    data = box(b"ftyp", b"isom") + large_box(b"mdat", bytes(20)) + box(b"moov")
    walked = list(isobmff.boxes(data))
    assert listing(walked) == [(b"ftyp", 0, 8, 12, 0), (b"mdat", 12, 16, 36, 0),
                               (b"moov", 48, 8, 8, 0)]
    assert walked[1].body == 28


def test_a_largesize_beyond_4_gib_is_followed_in_a_sparse_file_with_two_reads(tmp_path):
    """A 5 GiB mdat (sparse: no disk used) before the moov: a walk over the file reads the
    box headers only, never the media data between them."""
    mdat_size = 5 * 1024**3
    path = tmp_path / "big.mp4"
    with open(path, "wb") as handle:
        handle.write(box(b"ftyp", b"isom") + struct.pack(">I4sQ", 1, b"mdat", mdat_size))
        handle.seek(12 + mdat_size)
        handle.write(box(b"moov", box(b"mvhd", bytes(100))))
    with open(path, "rb") as handle:
        source = file_source(handle, chunk=4096, max_reads=4)
        walked = list(isobmff.boxes(source, descend={b"moov"}))
    assert [(b.type, b.offset) for b in walked] == [
        (b"ftyp", 0), (b"mdat", 12), (b"moov", 12 + mdat_size), (b"mvhd", 20 + mdat_size)]
    assert walked[1].size == mdat_size and walked[1].header_len == 16
    assert source.reads == 2  # the start of the file, then the moov


def test_size_0_runs_to_the_end_of_the_file_or_of_the_parent():
    at_top = box(b"ftyp", b"isom") + box(b"mdat", bytes(30), size=0)
    assert listing(isobmff.boxes(at_top)) == [(b"ftyp", 0, 8, 12, 0), (b"mdat", 12, 8, 38, 0)]
    inside = box(b"moov", box(b"trak", bytes(12), size=0) + bytes(4)) + box(b"free")
    walked = list(isobmff.boxes(inside, descend={b"moov"}))
    assert listing(walked) == [(b"moov", 0, 8, 32, 0), (b"trak", 8, 8, 24, 1),
                               (b"free", 32, 8, 8, 0)]
    # an object of unknown size: "to the end" is unknowable, so the walk ends there
    unknown = RangedSource(at_top, None, None)
    assert [b.type for b in isobmff.boxes(unknown)] == [b"ftyp"]
    with pytest.raises(Rejected, match="unknown end"):
        list(isobmff.boxes(RangedSource(at_top, None, None), strict=True))


@pytest.mark.parametrize(("data", "message"), [
    (box(b"ftyp", b"isom") + b"\0\0\0\x10moo", "box header at byte 12 runs past"),
    (box(b"ftyp", b"isom") + struct.pack(">I4s", 1, b"mdat") + b"\0\0\0", "no 64-bit size"),
])
def test_a_truncated_header_ends_a_lenient_walk_and_is_truncated_when_strict(data, message):
    assert [b.type for b in isobmff.boxes(data)] == [b"ftyp"]
    with pytest.raises(Rejected, match=message) as raised:
        list(isobmff.boxes(data, strict=True))
    assert raised.value.reason == "truncated"


def test_a_box_claiming_more_than_the_file_is_yielded_clipped_and_ends_its_level():
    data = box(b"ftyp", b"isom") + box(b"moov", box(b"mvhd", bytes(4)), size=1000)
    for strict in (False, True):  # whether that is fatal is the caller's call
        walked = list(isobmff.boxes(data, descend={b"moov"}, strict=strict))
        assert [(b.type, b.overruns) for b in walked] == [
            (b"ftyp", False), (b"moov", True), (b"mvhd", False)]
        moov = walked[1]
        assert (moov.size, moov.end, moov.stop, moov.limit) == (1000, 1012, 32, 32)
    # the same for a child claiming more than its parent (though the file holds it)
    child = box(b"moov", box(b"trak", bytes(4), size=500)) + bytes(600)
    trak = list(isobmff.boxes(child, descend={b"moov"}))[1]
    assert (trak.overruns, trak.limit, trak.stop) == (True, 20, 20)


def test_a_size_smaller_than_its_header_ends_the_walk_or_is_corrupt():
    data = box(b"ftyp", b"isom") + box(b"moov", size=4) + box(b"free")
    assert [b.type for b in isobmff.boxes(data)] == [b"ftyp"]
    with pytest.raises(Rejected, match="declares 4 bytes") as raised:
        list(isobmff.boxes(data, strict=True))
    assert raised.value.reason == "corrupt"
    largesize_too_small = large_box(b"mdat", size=12)
    assert list(isobmff.boxes(largesize_too_small)) == []


def nested(depth: int) -> bytes:
    data = box(b"leaf")
    for _ in range(depth):
        data = box(b"trak", data)
    return data


def test_depth_is_bounded_skipped_when_lenient_and_corrupt_when_strict():
    data = nested(30)
    walked = list(isobmff.boxes(data, descend={b"trak"}, max_depth=5))
    assert [b.depth for b in walked] == [0, 1, 2, 3, 4, 5]  # the box at depth 5 is not opened
    assert len(list(isobmff.boxes(data, descend={b"trak"}, max_depth=30))) == 31
    with pytest.raises(Rejected, match="nested more than 5 deep") as raised:
        list(isobmff.boxes(data, descend={b"trak"}, max_depth=5, strict=True))
    assert raised.value.reason == "corrupt"


def test_count_is_bounded_across_all_levels():
    flat = box(b"free") * 100
    assert len(list(isobmff.boxes(flat, max_boxes=10))) == 10
    deep = box(b"moov", box(b"free") * 50) + box(b"free") * 50
    assert len(list(isobmff.boxes(deep, descend={b"moov"}, max_boxes=20))) == 20
    # 20,000 traks each claiming the rest: bounded, quick, never raising
    hostile = box(b"moov", b"".join(struct.pack(">I4s", 8 * (20_000 - i), b"trak")
                                    for i in range(20_000)))
    started = time.monotonic()
    walked = list(isobmff.boxes(hostile, descend={b"moov", b"trak"}, max_depth=10,
                                max_boxes=2000))
    assert len(walked) == 11 and time.monotonic() - started < 1.0


def test_a_ranged_source_spends_at_most_its_reads_and_a_failed_read_ends_them():
    data = box(b"ftyp", b"isom") + box(b"mdat", bytes(10_000)) + box(b"free", bytes(10_000)) \
        + box(b"moov")
    asked: list[int] = []

    def read_range(offset: int, size: int) -> bytes:
        asked.append(offset)
        return data[offset:offset + size]

    source = RangedSource(data[:100], read_range, len(data), chunk=64, max_reads=1)
    assert [b.type for b in isobmff.boxes(source)] == [b"ftyp", b"mdat", b"free"]
    assert asked == [10_020] and source.reads == 1

    def failing(offset: int, size: int) -> bytes:
        raise OSError("gone")

    broken = RangedSource(data[:100], failing, len(data), max_reads=3)
    assert [b.type for b in isobmff.boxes(broken)] == [b"ftyp", b"mdat"]
    assert (broken.reads, broken.budget) == (1, 0)


def test_buffers_of_every_kind_are_read_alike(tmp_path):
    path = tmp_path / "boxes.mp4"
    path.write_bytes(NESTED)
    expected = listing(isobmff.boxes(NESTED, descend={b"moov"}))
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0,
                                               access=mmap.ACCESS_READ) as mapped:
        for data in (bytearray(NESTED), memoryview(NESTED), mapped, BufferSource(NESTED)):
            assert listing(isobmff.boxes(data, descend={b"moov"})) == expected
    assert isinstance(as_source(NESTED), BufferSource)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("containers")
    write_video(folder / "clip.mp4", seconds=1)
    write_video(folder / "clip.webm", codec="libvpx-vp9", seconds=1, size=(32, 24),
                audio_codec="libopus")
    write_audio(folder / "tone.flac", "flac", seconds=1)
    return folder


def test_a_real_mp4s_top_level_boxes_tile_the_file_and_hold_its_sample_tables(media):
    data = (media / "clip.mp4").read_bytes()
    top = list(isobmff.boxes(data))
    assert {b"ftyp", b"moov", b"mdat"} <= {b.type for b in top}
    assert sum(b.size for b in top) == len(data) and not any(b.overruns for b in top)
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
    tables = [b for b in isobmff.boxes(data, descend=containers, strict=True)
              if b.type == b"stsz"]
    assert len(tables) == 2 and all(b.depth == 5 for b in tables)  # video and audio


# ---- EBML ------------------------------------------------------------------------------------

def vint(value: int, length: int) -> bytes:
    return (value | 1 << 7 * length).to_bytes(length, "big")


def element(ident: int, body: bytes = b"", length: int = 1, size: int | None = None,
            unknown: bool = False) -> bytes:
    """An element with a `length`-byte size: its body's, `size`, or all ones (unknown)."""
    declared = (1 << 7 * length) - 1 if unknown else len(body) if size is None else size
    return ident.to_bytes((ident.bit_length() + 7) // 8, "big") + vint(declared, length) + body


UNKNOWN = [b"\xff", b"\x7f\xff", b"\x3f\xff\xff", b"\x1f" + b"\xff" * 3, b"\x0f" + b"\xff" * 4,
           b"\x07" + b"\xff" * 5, b"\x03" + b"\xff" * 6, b"\x01" + b"\xff" * 7]


@pytest.mark.parametrize("length", range(1, 9))
def test_vints_of_1_to_8_bytes_and_the_unknown_size_of_each_length(length):
    largest = (1 << 7 * length) - 2  # all ones is reserved for "unknown"
    for value in (0, 1, largest // 3, largest):
        read = ebml.read_vint(b"\xaa" + vint(value, length) + b"\xbb", 1)
        assert read is not None
        assert (read.value, read.length, read.unknown) == (value, length, False)
        assert read.raw == int.from_bytes(vint(value, length), "big")  # as IDs are written
    unknown = ebml.read_vint(UNKNOWN[length - 1])
    assert unknown is not None and unknown.unknown and unknown.length == length
    assert ebml.read_vint(vint(5, length)[:-1] if length > 1 else b"") is None  # cut short


def test_a_zero_first_byte_or_no_bytes_is_no_vint():
    assert ebml.read_vint(b"\x00\xff") is None  # a length over 8 bytes
    assert ebml.read_vint(b"") is None and ebml.read_vint(b"\x81", 1) is None
    assert ebml.read_vint(b"\x1a\x45\xdf\xa3").raw == ebml.EBML_HEADER


INFO, DURATION, TRACKS, DOCTYPE = 0x1549A966, 0x4489, 0x1654AE6B, 0x4282
MKV = (element(ebml.EBML_HEADER, element(DOCTYPE, b"webm"))
       + element(ebml.SEGMENT, element(INFO, element(DURATION, bytes(4)))
                 + element(TRACKS, b"", length=8), length=8))


def test_elements_come_in_file_order_with_their_header_lengths_and_sizes():
    walked = list(ebml.elements(MKV, descend={ebml.EBML_HEADER, ebml.SEGMENT, INFO}))
    assert [(e.id, e.offset, e.header_len, e.size, e.depth) for e in walked] == [
        (ebml.EBML_HEADER, 0, 5, 7, 0), (DOCTYPE, 5, 3, 4, 1),
        (ebml.SEGMENT, 12, 12, 24, 0), (INFO, 24, 5, 7, 1), (DURATION, 29, 3, 4, 2),
        (TRACKS, 36, 12, 0, 1)]
    segment = walked[2]
    assert (segment.body, segment.end, segment.stop) == (24, 48, 48) and segment.end == len(MKV)


def test_an_unknown_size_runs_to_the_end_of_its_parent_and_ends_its_level():
    live = element(ebml.EBML_HEADER) + element(ebml.SEGMENT, unknown=True) \
        + element(INFO, element(DURATION, bytes(4))) + element(TRACKS)
    walked = list(ebml.elements(live, descend={ebml.SEGMENT}))
    segment = walked[1]
    assert (segment.size, segment.end, segment.stop) == (None, None, len(live))
    assert [(e.id, e.depth) for e in walked] == [
        (ebml.EBML_HEADER, 0), (ebml.SEGMENT, 0), (INFO, 1), (TRACKS, 1)]
    # an unknown-size element inside a parent ends that level, not the walk
    inner = element(ebml.SEGMENT, element(INFO, b"\xaa" * 3, unknown=True)
                    + element(TRACKS)) + element(ebml.EBML_HEADER)
    assert [e.id for e in ebml.elements(inner, descend={ebml.SEGMENT})] == [
        ebml.SEGMENT, INFO, ebml.EBML_HEADER]


def test_a_stop_id_ends_its_level_unread_while_the_levels_above_go_on():
    cluster = element(ebml.CLUSTER, bytes(20))
    data = element(ebml.SEGMENT, element(INFO) + cluster + element(TRACKS)) \
        + element(ebml.EBML_HEADER)
    walked = ebml.elements(data, descend={ebml.SEGMENT}, stop_at={ebml.CLUSTER})
    assert [e.id for e in walked] == [ebml.SEGMENT, INFO, ebml.EBML_HEADER]


def test_an_element_larger_than_the_file_is_clipped_to_its_parent_and_ends_its_level():
    data = element(ebml.SEGMENT, element(INFO, bytes(3), length=2, size=900) + element(TRACKS))
    walked = list(ebml.elements(data, descend={ebml.SEGMENT}))
    info = walked[1]
    assert (info.size, info.end, info.limit, info.stop) == (900, 911, len(data), len(data))
    assert [e.id for e in walked] == [ebml.SEGMENT, INFO]  # nothing after the bad size


def test_an_element_header_is_read_as_far_as_the_data_goes_its_body_up_to_its_parent():
    data = element(ebml.SEGMENT, size=2) + element(INFO, bytes(3))
    child = next(ebml.elements(data, 5, 7))  # the Segment's 2 bytes hold part of a header
    assert (child.id, child.body, child.stop) == (INFO, 10, 7)
    assert data[child.body:child.stop] == b""


@pytest.mark.parametrize(("data", "reason"), [
    (element(ebml.EBML_HEADER) + b"\x00\x81", "corrupt"),         # a zero-byte ID
    (element(ebml.EBML_HEADER) + b"\x42\x82\x00", "corrupt"),     # a zero-byte size
    (element(ebml.EBML_HEADER) + b"\x1a\x45", "truncated"),       # an ID cut short
    (element(ebml.EBML_HEADER) + b"\x42\x82\x40", "truncated"),   # a size cut short
])
def test_an_unreadable_header_ends_a_lenient_walk_and_is_rejected_when_strict(data, reason):
    assert [e.id for e in ebml.elements(data)] == [ebml.EBML_HEADER]
    with pytest.raises(Rejected) as raised:
        list(ebml.elements(data, strict=True))
    assert raised.value.reason == reason


def test_ebml_depth_and_count_are_bounded():
    data = element(0xE0)
    for _ in range(40):
        data = element(0xAE, data, length=4)
    walked = list(ebml.elements(data, descend={0xAE}, max_depth=10))
    assert max(e.depth for e in walked) == 10 and len(walked) == 11
    with pytest.raises(Rejected, match="nested more than 10 deep"):
        list(ebml.elements(data, descend={0xAE}, max_depth=10, strict=True))
    assert len(list(ebml.elements(element(0xEC) * 500, max_elements=25))) == 25
    nested_unknown = element(ebml.EBML_HEADER, length=8, unknown=True) \
        + element(ebml.SEGMENT, length=8, unknown=True) * 5000
    started = time.monotonic()
    assert len(list(ebml.elements(nested_unknown, descend={ebml.SEGMENT, ebml.EBML_HEADER},
                                  max_depth=10, max_elements=2000))) == 11
    assert time.monotonic() - started < 1.0


def test_a_real_webm_has_an_ebml_header_then_a_segment_of_info_tracks_and_clusters(media):
    data = (media / "clip.webm").read_bytes()
    top = list(ebml.elements(data, strict=True))
    assert [e.id for e in top][:2] == [ebml.EBML_HEADER, ebml.SEGMENT]
    children = {e.id for e in ebml.elements(data, top[1].body, top[1].stop, strict=True)}
    assert {INFO, TRACKS, ebml.CLUSTER} <= children
    doctype = next(e for e in ebml.elements(data, descend={ebml.EBML_HEADER})
                   if e.id == DOCTYPE)
    assert data[doctype.body:doctype.stop] == b"webm"


# ---- FLAC ------------------------------------------------------------------------------------

def block(kind: int, body: bytes, last: bool = False, length: int | None = None) -> bytes:
    declared = len(body) if length is None else length
    return bytes([kind | (0x80 if last else 0)]) + declared.to_bytes(3, "big") + body


CHAIN = (flac.MARKER + block(flac.STREAMINFO, bytes(34)) + block(4, b"comment")
         + block(1, bytes(100), last=True) + b"\xff\xf8" + bytes(30))


def test_a_flac_block_chain_ends_at_the_block_flagged_last():
    walked = list(flac.blocks(CHAIN, 4))
    assert [(b.type, b.last, b.offset, b.length) for b in walked] == [
        (0, False, 4, 34), (4, False, 42, 7), (1, True, 53, 100)]
    assert walked[-1].end == CHAIN.index(b"\xff\xf8")  # the audio frames start there
    assert walked[0].body == 8 and walked[1].end == walked[2].offset


def test_a_flac_header_cut_short_ends_the_walk_or_is_truncated():
    cut = flac.MARKER + block(flac.STREAMINFO, bytes(34)) + b"\x84\x00"
    assert [b.type for b in flac.blocks(cut, 4)] == [flac.STREAMINFO]
    with pytest.raises(Rejected, match="block header runs past") as raised:
        list(flac.blocks(cut, 4, strict=True))
    assert raised.value.reason == "truncated"


def test_a_flac_block_claiming_more_than_the_file_is_yielded_then_ends_the_walk():
    data = flac.MARKER + block(6, bytes(10), length=1_000_000) + block(1, b"", last=True)
    for strict in (False, True):  # the caller weighs it (a metadata budget) before truncation
        walked = list(flac.blocks(data, 4, strict=strict))
        assert [(b.type, b.length, b.end > len(data)) for b in walked] == [(6, 1_000_000, True)]


def test_flac_blocks_are_bounded_in_count():
    endless = flac.MARKER + block(1, b"") * 10_000
    assert len(list(flac.blocks(endless, 4, max_blocks=100))) == 100


def test_id3v2_length_counts_the_syncsafe_size_and_a_footer():
    tag = b"ID3\x04\x00\x00" + bytes([0, 0, 1, 0x7F])  # 1 << 7 | 0x7F = 255
    assert flac.id3v2_length(tag) == 10 + 255
    assert flac.id3v2_length(tag[:5] + b"\x10" + tag[6:]) == 10 + 255 + 10  # footer flag
    assert flac.id3v2_length(b"fLaC" + bytes(10)) == 0
    assert flac.id3v2_length(b"ID3\x04") == 0


def test_a_real_flacs_metadata_starts_with_streaminfo_and_ends_before_its_frames(media):
    data = (media / "tone.flac").read_bytes()
    start = flac.id3v2_length(data)
    assert data[start:start + 4] == flac.MARKER
    walked = list(flac.blocks(data, start + 4, strict=True))
    assert walked[0].type == flac.STREAMINFO and walked[0].length == 34
    assert walked[-1].last and not any(b.last for b in walked[:-1])
    assert data[walked[-1].end:walked[-1].end + 2] in (b"\xff\xf8", b"\xff\xf9")
