"""The cheap probe: what a media file costs (duration, video size, codec) from its header and
at most a few ranged reads, in plain Python that never raises and never loops on hostile
bytes."""

import random
import struct
import time
from pathlib import Path

import pytest

from media_assets.codec.cheap_probe import (
    MAX_RANGED_READS,
    CheapFacts,
    _probe,
    cheap_probe,
)
from media_assets.samples.av import write_audio, write_header_only_wav, write_video

HEADER = 4096  # small, so that even tiny generated files have their index past the header


def probe_file(path: Path, header: int = HEADER, ranged: bool = True) -> CheapFacts:
    data = path.read_bytes()
    reader = (lambda offset, size: data[offset:offset + size]) if ranged else None
    return cheap_probe(data[:header], size=len(data), read_range=reader, chunk=header)


# ---- hand-built ISO-BMFF ------------------------------------------------------------------

def box(kind: bytes, body: bytes = b"", size: int | None = None) -> bytes:
    return struct.pack(">I4s", len(body) + 8 if size is None else size, kind) + body


def mvhd(timescale: int, duration: int, version: int = 0) -> bytes:
    if version == 1:
        return box(b"mvhd", bytes([1, 0, 0, 0]) + bytes(16)
                   + struct.pack(">IQ", timescale, duration) + bytes(80))
    return box(b"mvhd", bytes(4) + bytes(8) + struct.pack(">II", timescale, duration) + bytes(80))


def tkhd(width: int, height: int, version: int = 0) -> bytes:
    head = bytes([version, 0, 0, 7]) + (bytes(32) if version == 1 else bytes(20))
    return box(b"tkhd", head + bytes(52) + struct.pack(">II", width << 16, height << 16))


def stsd(fourcc: bytes, count: int = 1) -> bytes:
    entry = box(fourcc, bytes(78))
    return box(b"stsd", bytes(4) + struct.pack(">I", count) + entry)


def trak(fourcc: bytes, width: int = 0, height: int = 0) -> bytes:
    stbl = box(b"stbl", stsd(fourcc))
    return box(b"trak", tkhd(width, height) + box(b"mdia", box(b"minf", stbl)))


def mp4(*moov_children: bytes, mdat: int = 0) -> bytes:
    ftyp = box(b"ftyp", b"isom\0\0\2\0isomiso2mp41")
    return ftyp + box(b"mdat", bytes(mdat)) + box(b"moov", b"".join(moov_children))


# ---- real files, made with PyAV -------------------------------------------------------------

@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cheap_probe")
    write_video(folder / "faststart.mp4", seconds=2, faststart=True)
    write_video(folder / "moov_at_end.mp4", seconds=2)
    write_video(folder / "clip.mov", seconds=2, format="mov", audio="mono")
    write_video(folder / "long.mp4", seconds=600, fps=1, size=(16, 16), audio=None)
    write_video(folder / "clip.webm", codec="libvpx-vp9", seconds=1, size=(32, 24),
                audio_codec="libopus")
    write_video(folder / "clip.mkv", seconds=1, size=(32, 24))
    write_audio(folder / "tone.wav", "pcm_s16le", seconds=3)
    write_audio(folder / "tone.flac", "flac", seconds=3)
    write_audio(folder / "tone.m4a", "aac", seconds=3, format="ipod")
    write_header_only_wav(folder / "header_only.wav")
    return folder


def test_an_mp4_with_its_index_first_is_read_from_the_header_alone(media):
    facts = probe_file(media / "faststart.mp4", header=65536, ranged=False)
    assert (facts.container, facts.duration_seconds) == ("mp4", 2.0)
    assert (facts.width, facts.height, facts.codecs) == (64, 48, ("h264", "aac"))
    assert facts.has_video and facts.ranged_reads == 0


def test_an_mp4_with_its_index_last_costs_one_ranged_read_where_the_box_sizes_point(media):
    data = (media / "moov_at_end.mp4").read_bytes()
    assert cheap_probe(data[:HEADER], size=len(data)).duration_seconds is None  # header only
    asked = []

    def read_range(offset: int, size: int) -> bytes:
        asked.append((offset, size))
        return data[offset:offset + size]

    facts = cheap_probe(data[:HEADER], size=len(data), read_range=read_range, chunk=HEADER)
    assert (facts.duration_seconds, facts.pixels, facts.codecs) == (2.0, 64 * 48,
                                                                    ("h264", "aac"))
    assert asked == [(data.rindex(b"moov") - 4, HEADER)]


def test_mov_m4a_and_a_long_clip_of_tiny_frames(media):
    mov = probe_file(media / "clip.mov")
    assert (mov.container, mov.duration_seconds, mov.codecs) == ("mov", 2.0, ("h264", "aac"))
    m4a = probe_file(media / "tone.m4a")
    assert (m4a.codecs, m4a.pixels, m4a.has_video) == (("aac",), None, False)
    assert m4a.duration_seconds == pytest.approx(3.0, abs=0.05)
    long = probe_file(media / "long.mp4")
    assert (long.duration_seconds, long.width, long.height) == (600.0, 16, 16)
    assert (media / "long.mp4").stat().st_size < 100_000  # long, yet tiny and cheap to make


def test_matroska_and_webm_declare_duration_size_and_codecs_in_their_header(media):
    webm = probe_file(media / "clip.webm", ranged=False)
    assert (webm.container, webm.width, webm.height, webm.codecs) == (
        "webm", 32, 24, ("vp9", "opus"))
    assert webm.duration_seconds == pytest.approx(1.0, abs=0.05)
    mkv = probe_file(media / "clip.mkv", ranged=False)
    assert (mkv.container, mkv.pixels, mkv.codecs) == ("mkv", 32 * 24, ("h264", "aac"))


def test_wav_duration_comes_from_byte_rate_and_flac_from_streaminfo(media):
    assert probe_file(media / "tone.wav").duration_seconds == pytest.approx(3.0)
    assert probe_file(media / "tone.wav").codecs == ("pcm",)
    flac = probe_file(media / "tone.flac")
    assert (flac.container, flac.duration_seconds, flac.codecs) == ("flac", 3.0, ("flac",))
    # a WAV whose header promises a second it does not hold declares what it holds
    assert probe_file(media / "header_only.wav").duration_seconds == 0.0


@pytest.mark.parametrize(("fourcc", "codec"), [
    (b"avc1", "h264"), (b"avc3", "h264"), (b"hvc1", "hevc"), (b"hev1", "hevc"),
    (b"av01", "av1"), (b"vp09", "vp9"), (b"apch", "prores"), (b"ap4x", "prores"),
    (b"apco", "prores"), (b"mp4a", "aac"), (b"cfhd", "cfhd"), (b"Xyz1", "xyz1"),
    (b"\xff\x00ab", None),
])
def test_the_first_sample_entry_names_the_codec(fourcc, codec):
    facts = _probe(mp4(mvhd(600, 600), trak(fourcc, 64, 48)), None, None, 65536)
    assert facts.codecs == ((codec,) if codec else ())


def test_64_bit_durations_and_4k_track_sizes():
    data = mp4(mvhd(90_000, 3600 * 90_000, version=1), trak(b"hvc1", 3840, 2160))
    facts = _probe(data, len(data), None, 65536)
    assert (facts.duration_seconds, facts.pixels) == (3600.0, 3840 * 2160)
    v1 = _probe(mp4(mvhd(1, 5), box(b"trak", tkhd(7680, 4320, version=1)
                                    + box(b"mdia", box(b"minf", box(b"stbl",
                                                                     stsd(b"avc1")))))),
                None, None, 65536)
    assert (v1.width, v1.height) == (7680, 4320)


def test_a_moov_beyond_a_64_bit_mdat_is_found_by_walking_box_sizes():
    moov = box(b"moov", mvhd(1000, 7_200_000) + trak(b"apch", 1920, 1080))
    head = box(b"ftyp", b"qt  \0\0\0\0qt  ") + struct.pack(">I4sQ", 1, b"mdat", 16 + 10_000_000)
    reads = []

    def read_range(offset: int, size: int) -> bytes:
        reads.append(offset)
        return moov[offset - len(head) - 10_000_000:][:size] if offset >= len(head) else b""

    facts = cheap_probe(head, size=len(head) + 10_000_000 + len(moov), read_range=read_range)
    assert (facts.container, facts.duration_seconds, facts.codecs) == ("mov", 7200.0,
                                                                       ("prores",))
    assert reads == [len(head) + 10_000_000]


# ---- hostile bytes: never raise, never loop ---------------------------------------------------

HOSTILE = {
    "empty": b"",
    "zeros": bytes(4096),
    "truncated box": box(b"ftyp", b"isom")[:-2] + b"\0\0\0\xffmoov" + b"\0" * 6,
    "size 0 box (to the end)": box(b"ftyp", b"isom") + box(b"moov", mvhd(1, 9), size=0),
    "size 1 with a huge 64-bit size": box(b"ftyp", b"isom")
    + struct.pack(">I4sQ", 1, b"mdat", 2**64 - 1) + b"\0" * 32,
    "size 1 smaller than its header": box(b"ftyp", b"isom") + struct.pack(">I4sQ", 1, b"moov", 3),
    "huge 32-bit size": box(b"ftyp", b"isom") + box(b"moov", mvhd(1, 9), size=0xFFFFFFFF),
    "size smaller than a header": box(b"ftyp", b"isom") + box(b"moov", b"", size=4) * 50,
    "billion-entry sample table": mp4(mvhd(1, 9), box(b"trak", box(b"mdia", box(
        b"minf", box(b"stbl", stsd(b"avc1", count=1_000_000_000)
                     + box(b"stsz", struct.pack(">III", 0, 0, 1_000_000_000))))))),
    "zero timescale": mp4(mvhd(0, 1000)),
    "unknown duration": mp4(mvhd(1000, 0xFFFFFFFF)),
    "deeply nested traks": box(b"ftyp", b"isom") + box(b"moov", b"".join(
        struct.pack(">I4s", 8 * (20_000 - i), b"trak") for i in range(20_000))),
    "a box of size 0 inside every box": mp4(*[box(b"trak", b"", size=0)] * 3),
    "child claiming more than its parent": mp4(box(b"trak", box(b"mdia", bytes(16),
                                                                size=10**9))),
    "riff with a huge chunk": b"RIFF\xff\xff\xff\xffWAVE" + b"junk\xff\xff\xff\xff" * 100,
    "riff with zero byte rate": b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0" + bytes(16)
    + b"data\xff\xff\xff\xff",
    "flac cut short": b"fLaC\0\0\0\x22\x12",
    "id3 pointing nowhere": b"ID3\4\0\0\x7f\x7f\x7f\x7f" + b"fLaC",
    "ebml with unknown sizes nested": b"\x1a\x45\xdf\xa3\x01\xff\xff\xff\xff\xff\xff\xff"
    + (b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff") * 5000,
    "ebml with a zero byte id": b"\x1a\x45\xdf\xa3\x84\0\0\0\0" + bytes(64),
    "ebml duration of NaN": b"\x1a\x45\xdf\xa3\x80\x18\x53\x80\x67\x8b\x15\x49\xa9\x66\x86"
    b"\x44\x89\x84\x7f\xc0\x00\x00",
    "ebml element larger than the file": b"\x1a\x45\xdf\xa3\x80\x18\x53\x80\x67\x01"
    + b"\x00\xff\xff\xff\xff\xff\xfe" + b"\x16\x54\xae\x6b\x88" + bytes(7),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bytes_declare_nothing_without_raising_or_looping(name):
    data = HOSTILE[name]
    started = time.monotonic()
    facts = _probe(data, len(data), lambda offset, size: data[offset:offset + size], 4096)
    assert isinstance(facts, CheapFacts)
    assert time.monotonic() - started < 1.0
    assert facts.duration_seconds is None or facts.duration_seconds >= 0


def test_a_file_of_many_boxes_after_mdat_costs_at_most_a_few_ranged_reads():
    head = box(b"ftyp", b"isom") + box(b"mdat", bytes(100_000))
    tail = box(b"free", bytes(100_000)) * 50 + box(b"moov", mvhd(1, 9))
    data = head + tail
    calls = []

    def read_range(offset: int, size: int) -> bytes:
        calls.append(offset)
        return data[offset:offset + size]

    facts = cheap_probe(data[:len(head) - 99_000], size=len(data), read_range=read_range,
                        chunk=1024)
    assert len(calls) == MAX_RANGED_READS and facts.duration_seconds is None


def test_a_failing_or_oversized_ranged_read_is_only_unknown(media):
    data = (media / "moov_at_end.mp4").read_bytes()

    def failing(offset: int, size: int) -> bytes:
        raise OSError("gone")

    assert cheap_probe(data[:HEADER], size=len(data), read_range=failing).duration_seconds \
        is None
    generous = cheap_probe(data[:HEADER], size=len(data), chunk=HEADER,
                           read_range=lambda offset, size: data[offset:] + bytes(10**6))
    assert generous.duration_seconds == 2.0


def test_mutated_real_headers_never_raise(media):
    rng = random.Random(10)
    for name in ("faststart.mp4", "clip.webm", "tone.wav", "tone.flac", "clip.mkv"):
        data = (media / name).read_bytes()[:HEADER]
        for _ in range(150):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 12)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            cut = bytes(mutated[:rng.randint(0, len(mutated))])
            _probe(cut, rng.choice([None, len(cut), 2**40]), None, 4096)
