"""What a media file costs, from its first bytes: duration, video size and codec.

Runs in the sensor (the code server) on untrusted bytes, so it is plain Python, bounded (a
fixed number of boxes/elements, a fixed depth, at most `MAX_RANGED_READS` extra reads) and
never raises: anything it cannot read is simply None. Containers: MP4/MOV/M4A (ISO-BMFF;
when `moov` sits after `mdat` it is fetched with a ranged read at the offset the top-level
box sizes give), WAV, FLAC and Matroska/WebM (within the header only). No libav.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

ReadRange = Callable[[int, int], bytes]  # (offset, size) -> at most size bytes

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


class _Source:
    """The header plus at most `MAX_RANGED_READS` ranged reads of `chunk` bytes each."""

    def __init__(self, header: bytes, read_range: ReadRange | None, size: int | None,
                 chunk: int) -> None:
        self.windows = [(0, header)]
        self.read_range, self.size, self.chunk, self.reads = read_range, size, chunk, 0
        self.budget = MAX_RANGED_READS if read_range else 0

    def get(self, offset: int, length: int, partial: bool = False) -> bytes:
        """Up to `length` bytes at `offset`: from what was read when it covers them (any
        part of them if `partial`), else from one more ranged read while the budget lasts."""
        if self.size is not None:
            length = min(length, self.size - offset)
        if length <= 0 or not 0 <= offset < 1 << 62:
            return b""
        for start, data in self.windows:
            inside = start <= offset < start + len(data)
            if inside and (partial or offset + length <= start + len(data)):
                return data[offset - start:offset - start + length]
        if self.reads >= self.budget or self.read_range is None:
            return next((data[offset - start:offset - start + length]
                         for start, data in self.windows
                         if start <= offset < start + len(data)), b"")
        self.reads += 1
        want = max(length, self.chunk)
        try:
            data = bytes(self.read_range(offset, want))[:want]
        except Exception:  # noqa: BLE001 - a failed read (vanished file, S3 error) is "unknown"
            self.budget = 0
            return b""
        self.windows.append((offset, data))
        return data[:length]


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
        return _iso_bmff(_Source(header, read_range, size, chunk))
    if header[:4] in (b"RIFF", b"RF64") and header[8:12] == b"WAVE":
        return _wav(header, size)
    if header[:4] == b"fLaC" or header[:3] == b"ID3":
        return _flac(header)
    if header[:4] == b"\x1a\x45\xdf\xa3":
        return _matroska(header)
    return CheapFacts()


# ---- ISO-BMFF (MP4, MOV, M4A) ----------------------------------------------------------

def _box_header(src: _Source, offset: int, end: int | None) -> tuple[bytes, int, int] | None:
    """(type, header length, box size) of the box at `offset`, or None if unreadable."""
    head = src.get(offset, 16)
    if len(head) < 8:
        return None
    size, kind = struct.unpack(">I4s", head[:8])
    header_len = 8
    if size == 1:
        if len(head) < 16:
            return None
        size, header_len = struct.unpack(">Q", head[8:16])[0], 16
    elif size == 0:  # to the end of the file (or of the parent)
        limit = end if end is not None else src.size
        size = (limit - offset) if limit is not None else 0
    if size < header_len:
        return None
    return kind, header_len, size


def _iso_bmff(src: _Source) -> CheapFacts:
    offset, moov = 0, None
    container = "mov" if src.get(8, 4) == b"qt  " else "mp4"
    for _ in range(MAX_TOP_LEVEL_BOXES):
        box = _box_header(src, offset, src.size)
        if box is None:
            break
        kind, header_len, size = box
        if kind == b"moov":
            moov = (offset + header_len, size - header_len)
            break
        offset += size
    if moov is None:
        return CheapFacts(container=container, ranged_reads=src.reads)
    start, length = moov
    data = src.get(start, min(length, src.chunk), partial=True)  # its start will do
    facts = _Moov()
    _walk_moov(data, 0, len(data), 0, facts, [0])
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


def _walk_moov(data: bytes, offset: int, end: int, depth: int, facts: _Moov,
               visited: list[int]) -> None:
    """Visit the boxes in data[offset:end]; a box running past the end is read as far as
    it goes."""
    while offset + 8 <= end and depth <= MAX_DEPTH and visited[0] < MAX_BOXES:
        visited[0] += 1
        size, kind = struct.unpack_from(">I4s", data, offset)
        header_len = 8
        if size == 1 and offset + 16 <= end:
            size, header_len = struct.unpack_from(">Q", data, offset + 8)[0], 16
        elif size == 0:
            size = end - offset
        if size < header_len:
            return
        body, stop = offset + header_len, min(offset + size, end)
        if kind in _CONTAINERS:
            if kind == b"trak":
                facts.track_size = None
            _walk_moov(data, body, stop, depth + 1, facts, visited)
        else:
            _leaf(kind, data[body:stop], facts)
        offset += size


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
    offset = 0
    if header[:3] == b"ID3" and len(header) >= 10:  # an ID3v2 tag before the stream
        s = header[6:10]
        offset = 10 + (s[0] << 21 | s[1] << 14 | s[2] << 7 | s[3])
    if header[offset:offset + 4] != b"fLaC" or len(header) < offset + 8 + 18:
        return CheapFacts()
    block = header[offset + 4:offset + 8]
    if block[0] & 0x7F != 0:  # STREAMINFO must come first
        return CheapFacts(container="flac", codecs=("flac",))
    info = header[offset + 8:offset + 8 + 18]
    bits = int.from_bytes(info[10:18], "big")
    rate, samples = bits >> 44, bits & ((1 << 36) - 1)
    duration = samples / rate if rate and samples else None
    return CheapFacts(container="flac", duration_seconds=duration, codecs=("flac",))


# ---- Matroska / WebM (EBML) --------------------------------------------------------------

# EBML header, Segment, Info, Tracks, TrackEntry, Video: the elements worth descending into.
_EBML_MASTERS = {0x1A45DFA3, 0x18538067, 0x1549A966, 0x1654AE6B, 0xAE, 0xE0}
_CLUSTER = 0x1F43B675
_MATROSKA_BY_LENGTH = sorted(MATROSKA_CODECS.items(), key=lambda kv: -len(kv[0]))


def _vint(data: bytes, offset: int, keep_marker: bool) -> tuple[int, int] | None:
    """(value, length) of an EBML variable-length integer; None when malformed."""
    if offset >= len(data) or data[offset] == 0:
        return None
    first = data[offset]
    length = 8 - first.bit_length() + 1
    if offset + length > len(data):
        return None
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[offset + 1:offset + length]:
        value = value << 8 | byte
    return value, length


class _Ebml:
    def __init__(self) -> None:
        self.doctype, self.scale, self.duration = "", 1_000_000, 0.0
        self.width: int | None = None
        self.height: int | None = None
        self.codecs: list[str] = []


def _matroska(header: bytes) -> CheapFacts:
    state = _Ebml()
    _walk_ebml(header, 0, len(header), 0, state, [0])
    seconds = state.duration * state.scale / 1e9
    return CheapFacts(container="webm" if state.doctype == "webm" else "mkv",
                      duration_seconds=seconds if 0 < seconds < float("inf") else None,
                      width=state.width, height=state.height,
                      codecs=tuple(sorted(state.codecs, key=lambda c: c not in VIDEO_CODECS)))


def _walk_ebml(data: bytes, offset: int, end: int, depth: int, state: _Ebml,
               visited: list[int]) -> None:
    while offset < end and depth <= MAX_DEPTH and visited[0] < MAX_BOXES:
        visited[0] += 1
        ident = _vint(data, offset, keep_marker=True)
        if ident is None:
            return
        size = _vint(data, offset + ident[1], keep_marker=False)
        if size is None:
            return
        element, body = ident[0], offset + ident[1] + size[1]
        unknown = size[0] == (1 << (7 * size[1])) - 1  # all ones: "unknown size"
        stop = end if unknown else min(body + size[0], end)
        if element == _CLUSTER:
            return  # media data: the header part is over
        if element in _EBML_MASTERS:
            _walk_ebml(data, body, stop, depth + 1, state, visited)
        else:
            _ebml_leaf(element, data[body:stop], state)
        if unknown:
            return
        offset = body + size[0]


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
