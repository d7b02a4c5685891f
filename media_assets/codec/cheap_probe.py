"""What a media file costs, from its first bytes: duration, video size and codec.

Runs in the sensor (the code server) on untrusted bytes, so it is plain Python, bounded (a
fixed number of boxes/elements, a fixed depth, at most `MAX_RANGED_READS` extra reads) and
never raises: anything it cannot read is simply None. Containers: MP4/MOV/M4A (ISO-BMFF;
when `moov` sits after `mdat` it is fetched with a ranged read at the offset the top-level
box sizes give), WAV, FLAC and Matroska/WebM (within the header only). No libav: boxes,
elements and metadata blocks are read by the shared bounded reader (`codec.containers`),
in its lenient mode.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from media_assets.codec.containers import ebml, flac, isobmff
from media_assets.codec.containers.source import RangedSource, ReadRange

MAX_RANGED_READS = 3    # top-level boxes after `mdat` (free, uuid, ...) then moov itself
MAX_TOP_LEVEL_BOXES = 64
MAX_BOXES = 2000        # every box or element visited in one probe
MAX_DEPTH = 10

# First `stsd` entry fourcc -> codec name (FFmpeg's names); other printable fourccs pass
# through lowercased, so a policy can name them too.
FOURCC_CODECS = {
    "avc1": "h264", "avc3": "h264", "hvc1": "hevc", "hev1": "hevc", "dvh1": "hevc",
    "dvhe": "hevc", "av01": "av1", "vp09": "vp9", "vp08": "vp8", "mp4v": "mpeg4",
    "apch": "prores", "apcn": "prores", "apcs": "prores", "apco": "prores",
    "ap4h": "prores", "ap4x": "prores", "avdn": "dnxhd", "avdh": "dnxhd", "jpeg": "mjpeg",
    "mjpa": "mjpeg", "mjpb": "mjpeg", "cfhd": "cfhd", "s263": "h263", "h263": "h263",
    "mp4a": "aac", "opus": "opus", "flac": "flac", "alac": "alac", "ac-3": "ac3",
    "ec-3": "eac3", ".mp3": "mp3", "lpcm": "pcm", "sowt": "pcm", "twos": "pcm",
    "in24": "pcm", "in32": "pcm", "fl32": "pcm", "fl64": "pcm", "ulaw": "pcm_mulaw",
    "alaw": "pcm_alaw",
}
# Matroska CodecID prefix -> codec name.
MATROSKA_CODECS = {
    "V_MPEG4/ISO/AVC": "h264", "V_MPEGH/ISO/HEVC": "hevc", "V_AV1": "av1", "V_VP9": "vp9",
    "V_VP8": "vp8", "V_PRORES": "prores", "V_MPEG4/ISO": "mpeg4", "V_MJPEG": "mjpeg",
    "A_AAC": "aac", "A_OPUS": "opus", "A_VORBIS": "vorbis", "A_FLAC": "flac",
    "A_MPEG/L3": "mp3", "A_AC3": "ac3", "A_EAC3": "eac3", "A_PCM": "pcm",
}
VIDEO_CODECS = frozenset({"h264", "hevc", "av1", "vp9", "vp8", "mpeg4", "prores", "dnxhd",
                          "mjpeg", "cfhd", "h263"})


@dataclass(frozen=True)
class CheapFacts:
    """What the container declares (None: not found in the bytes we read)."""

    container: str | None = None
    duration_seconds: float | None = None
    width: int | None = None
    height: int | None = None
    codecs: tuple[str, ...] = ()  # video codecs first
    ranged_reads: int = 0

    @property
    def pixels(self) -> int | None:
        return self.width * self.height if self.width and self.height else None

    @property
    def has_video(self) -> bool | None:
        """True/False when the tracks were seen, None when they were not."""
        if self.pixels or any(c in VIDEO_CODECS for c in self.codecs):
            return True
        return False if self.codecs else None


def cheap_probe(header: bytes, *, size: int | None = None,
                read_range: ReadRange | None = None, chunk: int = 65536) -> CheapFacts:
    """Duration, video size and codecs that `header` (plus, for an MP4 whose index is at the
    end, one or two ranged reads of `chunk` bytes) declares. Never raises."""
    try:
        return _probe(header, size, read_range, chunk)
    except Exception:  # noqa: BLE001 - hostile bytes declare nothing; never break the tick
        return CheapFacts()


def _probe(header: bytes, size: int | None, read_range: ReadRange | None,
           chunk: int) -> CheapFacts:
    """The parsers themselves, bounded by construction (the tests call it unguarded)."""
    if header[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free"):
        return _iso_bmff(RangedSource(header, read_range, size, chunk=chunk,
                                      max_reads=MAX_RANGED_READS))
    if header[:4] in (b"RIFF", b"RF64") and header[8:12] == b"WAVE":
        return _wav(header, size)
    if header[:4] == b"fLaC" or header[:3] == b"ID3":
        return _flac(header)
    if header[:4] == b"\x1a\x45\xdf\xa3":
        return _matroska(header)
    return CheapFacts()


# ---- ISO-BMFF (MP4, MOV, M4A) ----------------------------------------------------------

def _iso_bmff(src: RangedSource) -> CheapFacts:
    container = "mov" if src.read(8, 4) == b"qt  " else "mp4"
    moov = next((box for box in isobmff.boxes(src, max_boxes=MAX_TOP_LEVEL_BOXES)
                 if box.type == b"moov"), None)
    if moov is None:
        return CheapFacts(container=container, ranged_reads=src.reads)
    data = src.read(moov.body, min(moov.size - moov.header_len, src.chunk),
                    partial=True)  # its start will do
    facts = _Moov()
    # a box running past what was read is read as far as it goes
    for box in isobmff.boxes(data, descend=_CONTAINERS, max_depth=MAX_DEPTH,
                             max_boxes=MAX_BOXES):
        if box.type == b"trak":
            facts.track_size = None
        elif box.type not in _CONTAINERS:
            _leaf(box.type, data[box.body:box.stop], facts)
    return CheapFacts(container=container, duration_seconds=facts.duration(),
                      width=facts.width, height=facts.height,
                      codecs=tuple(sorted(facts.codecs, key=lambda c: c not in VIDEO_CODECS)),
                      ranged_reads=src.reads)


class _Moov:
    def __init__(self) -> None:
        self.timescale = self.duration_units = self.fragment_units = 0
        self.width: int | None = None
        self.height: int | None = None
        self.codecs: list[str] = []
        self.track_size: tuple[int, int] | None = None

    def duration(self) -> float | None:
        units = self.duration_units or self.fragment_units
        return units / self.timescale if self.timescale and units else None


_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"edts"}


def _leaf(kind: bytes, body: bytes, facts: _Moov) -> None:
    if kind == b"mvhd" and len(body) >= 20:
        if body[0] == 1 and len(body) >= 32:
            facts.timescale, facts.duration_units = struct.unpack_from(">IQ", body, 20)
        else:
            facts.timescale, facts.duration_units = struct.unpack_from(">II", body, 12)
        if facts.duration_units in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
            facts.duration_units = 0  # "unknown"
    elif kind == b"mehd" and len(body) >= 8:
        facts.fragment_units = (struct.unpack_from(">Q", body, 4)[0] if body[0] == 1
                                and len(body) >= 12 else struct.unpack_from(">I", body, 4)[0])
    elif kind == b"tkhd":
        at = 88 if body[:1] == b"\x01" else 76  # width, height: 16.16 fixed point
        if len(body) >= at + 8:
            width, height = struct.unpack_from(">II", body, at)
            facts.track_size = (width >> 16, height >> 16)
    elif kind == b"stsd" and len(body) >= 16:
        count, _, fourcc = struct.unpack_from(">II4s", body, 4)
        if count:
            codec = _fourcc_codec(fourcc)
            if codec and codec not in facts.codecs:
                facts.codecs.append(codec)
            if codec in VIDEO_CODECS and facts.width is None:
                width, height = facts.track_size or (0, 0)
                if not (width and height) and len(body) >= 44:
                    # no usable tkhd: the visual sample entry's own width/height (16-bit)
                    width, height = struct.unpack_from(">HH", body, 40)
                if width and height:
                    facts.width, facts.height = width, height


def _fourcc_codec(fourcc: bytes) -> str | None:
    try:
        name = fourcc.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not all(c.isprintable() for c in name):
        return None
    return FOURCC_CODECS.get(name.lower(), name.strip().lower() or None)


# ---- WAV --------------------------------------------------------------------------------

def _wav(header: bytes, size: int | None) -> CheapFacts:
    offset, byte_rate, data_size, data_at, ds64, pcm = 12, 0, None, 0, None, False
    for _ in range(64):
        if offset + 8 > len(header):
            break
        kind, length = struct.unpack_from("<4sI", header, offset)
        body = offset + 8
        if kind == b"ds64" and body + 16 <= len(header):  # RF64: the real 64-bit sizes
            ds64 = struct.unpack_from("<Q", header, body + 8)[0]
        elif kind == b"fmt " and body + 12 <= len(header):
            fmt, byte_rate = struct.unpack_from("<H", header, body)[0], \
                struct.unpack_from("<I", header, body + 8)[0]
            pcm = fmt in (1, 3, 0xFFFE)  # integer, float, extensible
        elif kind == b"data":
            data_size, data_at = (ds64 if length == 0xFFFFFFFF and ds64 else length), body
            break
        offset = body + length + (length & 1)
    if data_size is not None and size is not None:
        data_size = max(0, min(data_size, size - data_at))  # a header may over-promise
    duration = data_size / byte_rate if byte_rate and data_size is not None else None
    return CheapFacts(container="wav", duration_seconds=duration,
                      codecs=("pcm",) if pcm else ())


# ---- FLAC -------------------------------------------------------------------------------

def _flac(header: bytes) -> CheapFacts:
    offset = flac.id3v2_length(header)  # an ID3v2 tag before the stream
    if header[offset:offset + 4] != flac.MARKER or len(header) < offset + 8 + 18:
        return CheapFacts()
    block = next(flac.blocks(header, offset + 4, max_blocks=1), None)
    if block is None or block.type != flac.STREAMINFO:  # STREAMINFO must come first
        return CheapFacts(container="flac", codecs=("flac",))
    info = header[block.body:block.body + 18]
    bits = int.from_bytes(info[10:18], "big")
    rate, samples = bits >> 44, bits & ((1 << 36) - 1)
    duration = samples / rate if rate and samples else None
    return CheapFacts(container="flac", duration_seconds=duration, codecs=("flac",))


# ---- Matroska / WebM (EBML) --------------------------------------------------------------

# EBML header, Segment, Info, Tracks, TrackEntry, Video: the elements worth descending into.
_EBML_MASTERS = {ebml.EBML_HEADER, ebml.SEGMENT, 0x1549A966, 0x1654AE6B, 0xAE, 0xE0}
_MATROSKA_BY_LENGTH = sorted(MATROSKA_CODECS.items(), key=lambda kv: -len(kv[0]))


class _Ebml:
    def __init__(self) -> None:
        self.doctype, self.scale, self.duration = "", 1_000_000, 0.0
        self.width: int | None = None
        self.height: int | None = None
        self.codecs: list[str] = []


def _matroska(header: bytes) -> CheapFacts:
    state = _Ebml()
    for element in ebml.elements(header, descend=_EBML_MASTERS, stop_at={ebml.CLUSTER},
                                 max_depth=MAX_DEPTH, max_elements=MAX_BOXES):
        if element.id not in _EBML_MASTERS:  # (a Cluster ends the header part)
            _ebml_leaf(element.id, header[element.body:element.stop], state)
    seconds = state.duration * state.scale / 1e9
    return CheapFacts(container="webm" if state.doctype == "webm" else "mkv",
                      duration_seconds=seconds if 0 < seconds < float("inf") else None,
                      width=state.width, height=state.height,
                      codecs=tuple(sorted(state.codecs, key=lambda c: c not in VIDEO_CODECS)))


def _ebml_leaf(element: int, value: bytes, state: _Ebml) -> None:
    number = int.from_bytes(value[:8], "big")
    if element == 0x4282:  # DocType
        state.doctype = value.rstrip(b"\0").decode("ascii", "replace")
    elif element == 0x2AD7B1 and number:  # TimestampScale (ns)
        state.scale = number
    elif element == 0x4489 and len(value) in (4, 8):  # Duration (float, in scale units)
        state.duration = struct.unpack(">f" if len(value) == 4 else ">d", value)[0]
    elif element == 0x86:  # CodecID
        codec_id = value.rstrip(b"\0").decode("ascii", "replace")
        codec = next((name for prefix, name in _MATROSKA_BY_LENGTH
                      if codec_id.startswith(prefix)), codec_id.lower() or None)
        if codec and codec not in state.codecs:
            state.codecs.append(codec)
    elif element == 0xB0 and state.width is None:  # PixelWidth (first video track)
        state.width = number
    elif element == 0xBA and state.height is None:  # PixelHeight
        state.height = number
