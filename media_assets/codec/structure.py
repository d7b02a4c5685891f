"""Container structure checks that need no decoder: what a file *declares* (box, chunk and
page sizes, sample-table lengths, data sizes, metadata blocks) against what it holds and what
the policy allows. They run at intake, before any full decode, and turn a vague decoder
failure into a specific reason: `truncated` (a declared size runs past the end of the file),
`too_large` (declares more data than the byte limit), `too_many_frames`, `polyglot` (the file
is also a ZIP archive), `hostile_metadata` (metadata blocks over the limit, looping or too
deeply nested). Pure Python over a memory map; no Dagster, no decoder. Boxes, EBML elements
and FLAC metadata blocks are read by the shared bounded reader (`codec.containers`), in its
strict mode.
"""

from __future__ import annotations

import mmap
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from media_assets.codec.containers import ebml, flac, isobmff, mpeg_audio
from media_assets.core.errors import Rejected

_ISO_BMFF = {"mp4", "mov", "m4a", "heic", "heif", "avif"}
_ISO_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}  # down to the sample tables
# Sample tables: box type -> (bytes per entry, offset of the entry count in the payload)
_SAMPLE_TABLES = {b"stts": 8, b"stss": 4, b"stsc": 12, b"stco": 4, b"co64": 8, b"ctts": 8}
MAX_BOX_DEPTH = 16
# Boxes, elements or metadata blocks one walk reads: far more than any real file holds; a walk
# that reaches it ends there and what lies beyond is left to the decoders.
MAX_ITEMS = 1_000_000
EXIF_MAX_DEPTH = 4  # IFD0 -> Exif IFD -> Interop IFD, GPS IFD, IFD1: never deeper
EXIF_MAX_ENTRIES = 4096


@contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap | bytes]:
    with open(path, "rb") as handle:
        if Path(path).stat().st_size == 0:
            yield b""
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            yield data


def check_structure(path: Path, file_type: str | None, *, max_file_bytes: int,
                    max_frames: int, max_metadata_bytes: int) -> None:
    """Raise `Rejected` when the file's structure is hostile or truncated; return otherwise.

    Only what is certain is rejected: a format this does not know, or a structure it cannot
    follow to the end, passes (the decoders have the last word)."""
    with _mapped(Path(path)) as data:
        if not data:
            return
        _check_zip_polyglot(Path(path), data)
        check = _CHECKS.get(file_type or "")
        if check is not None:
            check(data, max_file_bytes=max_file_bytes, max_frames=max_frames,
                  max_metadata_bytes=max_metadata_bytes)


def _truncated(what: str) -> Rejected:
    return Rejected("truncated", what)


def _check_zip_polyglot(path: Path, data: mmap.mmap | bytes) -> None:
    """A ZIP reader finds an archive from the end of a file, whatever comes first: a media
    file with a valid ZIP central directory is also an archive (a polyglot)."""
    tail_start = max(0, len(data) - 65_557)
    if data.rfind(b"PK\x05\x06", tail_start) < 0:
        return
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()[:3]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return  # the bytes look like an end record but no archive is there
    if names:
        raise Rejected("polyglot", f"the file is also a ZIP archive (holding {names})")


# --------------------------------------------------------------------------------------------
# ISO base media (MP4, MOV, M4A, HEIC, AVIF)


def _check_iso(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    for box in isobmff.boxes(data, descend=_ISO_CONTAINERS, max_depth=MAX_BOX_DEPTH,
                             max_boxes=MAX_ITEMS, strict=True):
        if box.overruns:
            raise _truncated(f"box {box.type!r} at byte {box.offset} declares {box.size} "
                             f"bytes, {box.stop - box.offset} remain")
        if box.type == b"stsz" or box.type == b"stz2":
            _check_stsz(data, box.type, box.body, box.end, max_frames)
        elif box.type in _SAMPLE_TABLES:
            _check_table(data, box.type, box.body, box.end, max_frames)


def _check_stsz(data, kind: bytes, payload: int, end: int, max_frames: int) -> None:
    if end - payload < 12:
        raise Rejected("corrupt", f"{kind.decode()} box too short")
    if kind == b"stsz":
        sample_size, count = struct.unpack_from(">II", data, payload + 4)
        entry_bits = 0 if sample_size else 32
    else:
        entry_bits = data[payload + 7]
        count = struct.unpack_from(">I", data, payload + 8)[0]
    if count > max_frames:
        raise Rejected("too_many_frames", f"sample table declares {count:,} samples > limit "
                                          f"{max_frames:,}")
    if (count * entry_bits + 7) // 8 > end - payload - 12:
        raise Rejected("corrupt", f"{kind.decode()} declares {count:,} entries, its box holds "
                                  f"{end - payload - 12} bytes")


def _check_table(data, kind: bytes, payload: int, end: int, max_frames: int) -> None:
    if end - payload < 8:
        raise Rejected("corrupt", f"{kind.decode()} box too short")
    count = struct.unpack_from(">I", data, payload + 4)[0]
    if count > max_frames:
        raise Rejected("too_many_frames", f"{kind.decode()} declares {count:,} entries > limit "
                                          f"{max_frames:,}")
    if count * _SAMPLE_TABLES[kind] > end - payload - 8:
        raise Rejected("corrupt", f"{kind.decode()} declares {count:,} entries, its box holds "
                                  f"{end - payload - 8} bytes")


# --------------------------------------------------------------------------------------------
# RIFF (WAV, AVI, WebP) and RF64


def _check_riff(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    if len(data) < 12:
        raise _truncated("RIFF header incomplete")
    magic = bytes(data[:4])
    declared = struct.unpack_from("<I", data, 4)[0] + 8
    data_size = None
    if magic == b"RF64":
        if bytes(data[12:16]) != b"ds64" or len(data) < 36:
            raise Rejected("corrupt", "RF64 without a ds64 chunk")
        declared, data_size = struct.unpack_from("<QQ", data, 20)
        declared += 8
    if declared > max_file_bytes:
        raise Rejected("too_large", f"the header declares {declared:,} bytes > limit "
                                    f"{max_file_bytes:,}")
    at = 12
    while at + 8 <= min(len(data), declared):
        kind, size = struct.unpack_from("<4sI", data, at)
        if kind == b"data" and data_size is not None and size == 0xFFFFFFFF:
            size = data_size
        if size > max_file_bytes:
            raise Rejected("too_large", f"chunk {kind!r} declares {size:,} bytes > limit "
                                        f"{max_file_bytes:,}")
        if at + 8 + size > len(data):
            raise _truncated(f"chunk {kind!r} at byte {at} declares {size:,} bytes, "
                             f"{len(data) - at - 8:,} remain")
        at += 8 + size + (size & 1)
    if declared > len(data) + 1:  # (+1: a missing pad byte at the very end is harmless)
        raise _truncated(f"the header declares {declared:,} bytes, the file has {len(data):,}")


# --------------------------------------------------------------------------------------------
# Matroska / WebM (EBML)


def _check_ebml(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    """Top-level elements, and the top-level children of each Segment (SeekHead, Info,
    Tracks, Clusters, Cues...), against the end of the file. An element of unknown size (a
    live recording's Segment or Cluster) ends its level: its end is only known by decoding."""
    for element in ebml.elements(data, max_elements=MAX_ITEMS, strict=True):
        _check_ebml_size(data, element)
        if element.id == ebml.SEGMENT:
            for child in ebml.elements(data, element.body, element.stop,
                                       max_elements=MAX_ITEMS, strict=True):
                _check_ebml_size(data, child)


def _check_ebml_size(data, element: ebml.Element) -> None:
    if element.end is not None and element.end > len(data):
        raise _truncated(f"EBML element 0x{element.id:X} at byte {element.offset} declares "
                         f"{element.size:,} bytes, {len(data) - element.body:,} remain")


# --------------------------------------------------------------------------------------------
# Frame-based audio: MP3, ADTS AAC; Ogg pages; FLAC


def _skip_id3(data) -> int:
    end = flac.id3v2_length(bytes(data[:10]))
    if end > len(data):
        raise _truncated(f"the ID3 tag runs to byte {end:,}, the file has {len(data):,}")
    return end


def _check_mp3(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    at = _skip_id3(data)
    frames = 0
    while at + 4 <= len(data):
        if bytes(data[at:at + 3]) == b"TAG" and at + 128 == len(data):
            return  # ID3v1 at the very end
        length = mpeg_audio.frame_length(struct.unpack_from(">I", data, at)[0])
        if length is None:
            return  # not a frame here: tags or junk the decoder will resync over
        if at + length > len(data):
            raise _truncated(f"MPEG audio frame {frames} at byte {at} declares {length} "
                             f"bytes, {len(data) - at} remain")
        frames += 1
        at += length
    if 0 < len(data) - at < 4:
        raise _truncated("the file ends inside an MPEG audio frame header")


def _check_adts(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    at = _skip_id3(data)
    frames = 0
    while at + 7 <= len(data):
        if data[at] != 0xFF or data[at + 1] & 0xF6 != 0xF0:
            return
        length = ((data[at + 3] & 3) << 11) | (data[at + 4] << 3) | (data[at + 5] >> 5)
        if length < 7:
            return
        if at + length > len(data):
            raise _truncated(f"ADTS frame {frames} at byte {at} declares {length} bytes, "
                             f"{len(data) - at} remain")
        frames += 1
        at += length
    if 0 < len(data) - at < 7:
        raise _truncated("the file ends inside an ADTS frame header")


def _check_ogg(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    at = 0
    last_flags = None
    while at < len(data):
        if bytes(data[at:at + 4]) != b"OggS":
            return  # trailing bytes that are not a page: let the demuxer judge
        if at + 27 > len(data):
            raise _truncated(f"Ogg page header at byte {at} is incomplete")
        segments = data[at + 26]
        if at + 27 + segments > len(data):
            raise _truncated(f"Ogg page at byte {at}: segment table incomplete")
        body = sum(data[at + 27:at + 27 + segments])
        end = at + 27 + segments + body
        if end > len(data):
            raise _truncated(f"Ogg page at byte {at} declares {body} bytes, "
                             f"{len(data) - at - 27 - segments} remain")
        last_flags = data[at + 5]
        at = end
    if last_flags is not None and not last_flags & 0x04:
        raise _truncated("the last Ogg page does not end its stream (no end-of-stream flag)")


def _crc8(data) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


_CRC16 = []
for _i in range(256):
    _c = _i << 8
    for _ in range(8):
        _c = ((_c << 1) ^ 0x8005) & 0xFFFF if _c & 0x8000 else (_c << 1) & 0xFFFF
    _CRC16.append(_c)


def _crc16(data) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


def _check_flac(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    at = _skip_id3(data)
    if bytes(data[at:at + 4]) != flac.MARKER:
        return
    metadata, frames_at = 0, None
    for block in flac.blocks(data, at + 4, max_blocks=MAX_ITEMS, strict=True):
        metadata += block.length
        if metadata > max_metadata_bytes:
            raise Rejected("hostile_metadata", f"FLAC metadata blocks exceed "
                                               f"{max_metadata_bytes:,} bytes")
        if block.end > len(data):
            raise _truncated(f"FLAC metadata block at byte {block.offset} declares "
                             f"{block.length:,} bytes")
        if block.last:
            frames_at = block.end
    if frames_at is None:
        return  # more blocks than a walk reads: the decoder decides
    at = frames_at
    if at == len(data):
        raise _truncated("a FLAC file without audio frames")
    # The last frame must be whole: find a frame header (sync + CRC-8) near the end whose
    # frame checks out (CRC-16) up to the last byte. A cut file's last frame never does.
    end = len(data) - 128 if bytes(data[-128:-125]) == b"TAG" else len(data)  # ID3v1
    tail = bytes(data[max(at, end - 131_072):end])
    position = len(tail)
    candidates = 0
    while candidates < 4:
        position = max(tail.rfind(b"\xff\xf8", 0, position), tail.rfind(b"\xff\xf9", 0,
                                                                         position))
        if position < 0:
            break
        if _flac_header_ok(tail, position):
            candidates += 1
            if _crc16(tail[position:-2]) == int.from_bytes(tail[-2:], "big"):
                return
    if candidates:
        raise _truncated("the last FLAC frame is incomplete (its CRC-16 does not match)")


def _flac_header_ok(tail: bytes, at: int) -> bool:
    """Whether a plausible FLAC frame header (whose CRC-8 matches) starts at `at`."""
    if at + 6 > len(tail):
        return False
    block, rate = tail[at + 2] >> 4, tail[at + 2] & 15
    if block == 0 or rate == 15:
        return False
    length = 4
    first = tail[at + 4]  # UTF-8-like coded frame/sample number
    extra = 0
    while extra < 7 and first & (0x80 >> extra):
        extra += 1
    length += 1 + (extra - 1 if extra > 1 else 0)
    length += 1 if block == 6 else 2 if block == 7 else 0
    length += 1 if rate == 12 else 2 if rate in (13, 14) else 0
    if at + length + 1 > len(tail):
        return False
    return _crc8(tail[at:at + length]) == tail[at + length]


# --------------------------------------------------------------------------------------------
# Images: PNG chunks, JPEG segments, GIF blocks, TIFF strips; EXIF structure


def _check_png(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    at = 8
    metadata = 0
    while at + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        if at + 12 + length > len(data):
            raise _truncated(f"PNG chunk {kind!r} at byte {at} declares {length:,} bytes, "
                             f"{len(data) - at - 12:,} remain")
        if kind in (b"eXIf", b"iCCP", b"iTXt", b"zTXt", b"tEXt"):
            metadata += length
            if metadata > max_metadata_bytes:
                raise Rejected("hostile_metadata", f"metadata chunks exceed "
                                                   f"{max_metadata_bytes:,} bytes")
            if kind == b"eXIf":
                problem = hostile_exif(bytes(data[at + 8:at + 8 + length]))
                if problem:
                    raise Rejected("hostile_metadata", problem)
        if kind == b"acTL" and length >= 8:
            frames = struct.unpack_from(">I", data, at + 8)[0]
            if frames > max_frames:
                raise Rejected("too_many_frames", f"APNG declares {frames:,} frames > "
                                                  f"limit {max_frames:,}")
        at += 12 + length
        if kind == b"IEND":
            return
    raise _truncated("the PNG ends before its IEND chunk")


def _check_jpeg(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    at = 2
    metadata = 0
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return  # not a marker where one must be: the decoder decides
        marker = data[at + 1]
        if marker == 0xFF:
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        length = struct.unpack_from(">H", data, at + 2)[0]
        if at + 2 + length > len(data):
            raise _truncated(f"JPEG segment 0x{marker:02X} at byte {at} declares {length} "
                             f"bytes, {len(data) - at - 2} remain")
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            metadata += length
            if metadata > max_metadata_bytes:
                raise Rejected("hostile_metadata", f"metadata segments (EXIF, ICC, XMP, ...) "
                                                   f"exceed {max_metadata_bytes:,} bytes")
            if marker == 0xE1 and bytes(data[at + 4:at + 10]) == b"Exif\x00\x00":
                problem = hostile_exif(bytes(data[at + 10:at + 2 + length]))
                if problem:
                    raise Rejected("hostile_metadata", problem)
        if marker == 0xDA:  # start of scan: the entropy-coded data follows, up to EOI
            if data.rfind(b"\xff\xd9", at + 2 + length) < 0:
                raise _truncated("the JPEG's image data ends without an end-of-image marker")
            return
        at += 2 + length
    raise _truncated("the JPEG ends before its image data")


def _check_gif(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    if len(data) < 13:
        raise _truncated("GIF header incomplete")
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    while at < len(data):
        block = data[at]
        if block == 0x3B:
            return
        if block == 0x2C:
            frames += 1
            if frames > max_frames:
                raise Rejected("too_many_frames", f"more than {max_frames:,} frames")
            if at + 10 > len(data):
                break
            local = data[at + 9]
            at += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1  # + LZW size
        elif block == 0x21:
            at += 2
        else:
            return  # not a block the decoder would read either: it decides
        while at < len(data) and data[at]:
            at += data[at] + 1
        at += 1
    raise _truncated("the GIF ends before its trailer")


def _check_tiff(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    if len(data) < 8:
        raise _truncated("TIFF header incomplete")
    order = "<" if bytes(data[:2]) == b"II" else ">"
    if struct.unpack_from(order + "H", data, 2)[0] != 42:
        return  # BigTIFF and others: the decoder decides
    offset = struct.unpack_from(order + "I", data, 4)[0]
    if offset + 2 > len(data):
        raise _truncated(f"the first TIFF directory (byte {offset}) is past the end")
    count = struct.unpack_from(order + "H", data, offset)[0]
    if offset + 2 + count * 12 > len(data):
        raise _truncated("the first TIFF directory runs past the end of the file")
    sizes = {2: 1, 1: 1, 3: 2, 4: 4, 7: 1, 16: 8}
    values: dict[int, list[int]] = {}
    for index in range(count):
        tag, typ, n, raw = struct.unpack_from(order + "HHI4s", data, offset + 2 + index * 12)
        if tag not in (273, 279, 324, 325) or typ not in (3, 4):
            continue
        width = sizes[typ]
        if n * width <= 4:
            where, source = 0, raw
        else:
            where = struct.unpack(order + "I", raw)[0]
            if where + n * width > len(data):
                raise _truncated(f"TIFF tag {tag} points past the end of the file")
            source = data
        fmt = f"{order}{n}{'H' if typ == 3 else 'I'}"
        values[tag] = list(struct.unpack_from(fmt, source, where))
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):
        for start, length in zip(values.get(offsets_tag, []), values.get(counts_tag, []),
                                 strict=False):
            if start + length > len(data):
                raise _truncated(f"TIFF image data at byte {start} declares {length:,} bytes, "
                                 f"the file has {len(data):,}")


def _check_bmp(data, *, max_file_bytes: int, max_frames: int, max_metadata_bytes: int) -> None:
    if len(data) < 14:
        raise _truncated("BMP header incomplete")
    declared, _, _, offset = struct.unpack_from("<IHHI", data, 2)
    if declared > len(data) or offset > len(data):
        raise _truncated(f"the BMP header declares {declared:,} bytes, the file has "
                         f"{len(data):,}")


@dataclass(frozen=True)
class ExifAnomaly:
    """Something odd in an EXIF block. `hostile` when a reader that follows it could be made
    to work without bound (nesting deeper than EXIF ever does, more entries than any camera
    writes); a loop is not: every reader we use stops at it, and cameras have written them,
    so such a file is kept and the anomaly recorded as a metadata warning."""

    text: str
    hostile: bool


def exif_problem(raw: bytes) -> str | None:
    """What is odd about an EXIF (TIFF) block (`exif_anomaly`), as text; None when sound."""
    anomaly = exif_anomaly(raw)
    return anomaly.text if anomaly else None


def hostile_exif(raw: bytes) -> str | None:
    """Why an EXIF block must be refused, if it must."""
    anomaly = exif_anomaly(raw)
    return anomaly.text if anomaly and anomaly.hostile else None


def exif_anomaly(raw: bytes) -> ExifAnomaly | None:
    """Walk an EXIF (TIFF) block's directories, bounded: IFDs that loop, nest deeper than
    EXIF ever does, or hold more entries than any camera writes. None when it is sound."""
    start = raw.find(b"II*\x00") if not raw.startswith((b"II*\x00", b"MM\x00*")) else 0
    if start < 0:
        start = raw.find(b"MM\x00*")
    if start < 0 or len(raw) - start < 8:
        return None  # not TIFF-structured: nothing to walk (Pillow ignores it)
    tiff = raw[start:]
    order = "<" if tiff[:2] == b"II" else ">"
    seen: set[int] = set()
    entries = 0
    pending = [(struct.unpack_from(order + "I", tiff, 4)[0], 1)]
    while pending:
        offset, depth = pending.pop()
        if offset == 0 or offset + 2 > len(tiff):
            continue
        if depth > EXIF_MAX_DEPTH:
            return ExifAnomaly(f"EXIF directories nested more than {EXIF_MAX_DEPTH} deep", True)
        if offset in seen:
            return ExifAnomaly(f"EXIF directories loop (directory at byte {offset} is reached "
                               "twice)", False)
        seen.add(offset)
        count = struct.unpack_from(order + "H", tiff, offset)[0]
        if offset + 2 + count * 12 > len(tiff):
            continue  # a broken pointer into garbage: readers ignore it, so do we
        entries += count
        if entries > EXIF_MAX_ENTRIES:
            return ExifAnomaly(f"EXIF holds more than {EXIF_MAX_ENTRIES} entries", True)
        for index in range(count):
            at = offset + 2 + index * 12
            if at + 12 > len(tiff):
                break
            tag, _, _, value = struct.unpack_from(order + "HHII", tiff, at)
            if tag in (0x8769, 0x8825, 0xA005):  # Exif, GPS and Interop directories
                pending.append((value, depth + 1))
        next_at = offset + 2 + count * 12
        if next_at + 4 <= len(tiff):
            pending.append((struct.unpack_from(order + "I", tiff, next_at)[0], depth))
    return None


_CHECKS = {
    **{name: _check_iso for name in _ISO_BMFF},
    "wav": _check_riff, "avi": _check_riff, "webp": _check_riff,
    "mkv": _check_ebml, "webm": _check_ebml,
    "mp3": _check_mp3, "aac": _check_adts, "ogg": _check_ogg, "flac": _check_flac,
    "png": _check_png, "jpeg": _check_jpeg, "bmp": _check_bmp, "gif": _check_gif,
    "tiff": _check_tiff,
}
