"""Identify a file by its first bytes (never by its name) and sort it into a lane."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import filetype
from PIL import Image

from media_assets.codec.containers import ebml, isobmff, mpeg_audio

# filetype's extension -> our short type name, by media kind.
_IMAGE = {
    "jpg": "jpeg", "png": "png", "apng": "png", "webp": "webp", "gif": "gif", "tif": "tiff",
    "bmp": "bmp", "heic": "heic", "avif": "avif",
}
_AUDIO = {"mp3": "mp3", "m4a": "m4a", "ogg": "ogg", "flac": "flac", "wav": "wav", "aac": "aac"}
_VIDEO = {"mp4": "mp4", "m4v": "mp4", "mov": "mov", "mkv": "mkv", "webm": "webm", "avi": "avi"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"heix", b"hevc", b"hevx", b"heim", b"heis"}

EXTENSIONS = {"jpeg": "jpg", "tiff": "tif"}


@dataclass(frozen=True)
class Sniffed:
    """What the magic bytes say: kind ('image', 'audio', 'video', 'sidecar' or 'other')
    and type."""

    kind: str
    type: str | None

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.type or "", self.type or "bin")


def _is_xmp(header: bytes) -> bool:
    """An XMP packet: XML whose first element is an xpacket or x:xmpmeta."""
    start = header[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"<?xml"):
        start = start[start.find(b"?>") + 2:].lstrip()
    return start.startswith((b"<?xpacket", b"<x:xmpmeta", b"<x:xapmeta"))


def sniff(header: bytes) -> Sniffed:
    """Classify a file from its first bytes; unknown content is kind 'other'."""
    if not header:
        return Sniffed("other", None)
    if _is_xmp(header):
        return Sniffed("sidecar", "xmp")
    if header[:4] == b"RF64" and header[8:12] == b"WAVE":  # a WAV past 4 GiB (EBU RF64)
        return Sniffed("audio", "wav")
    guess = filetype.guess(header)
    ext = guess.extension if guess else None
    if ext in _IMAGE:
        return Sniffed("image", _IMAGE[ext])
    if ext in _VIDEO:
        return Sniffed("video", _VIDEO[ext])
    if ext in _AUDIO:
        return Sniffed("audio", _AUDIO[ext])
    if header[4:8] == b"ftyp" and header[8:12] in _HEIF_BRANDS:
        return Sniffed("image", "heif")
    return _beyond_filetype(header) or Sniffed("other", ext)


# What `filetype` misses, each seen in real uploads (issue: real-world media fidelity).
_BIGTIFF = (b"II+\x00", b"MM\x00+")  # TIFF version 43: 64-bit offsets
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"ftyp"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPES = {b"webm": "webm", b"matroska": "mkv"}
EBML_HEADER_ID, EBML_DOCTYPE_ID = 0x1A45DFA3, 0x4282


def _beyond_filetype(header: bytes) -> Sniffed | None:
    if header[:4] in _BIGTIFF:
        return Sniffed("image", "tiff")
    if header[:4] == _EBML_MAGIC:
        doctype = _ebml_doctype(header)
        return Sniffed("video", doctype) if doctype else None
    if _quicktime_atoms(header):
        return Sniffed("video", "mov")
    if mpeg_audio.first_frame(header) is not None:  # MP3 behind padding or junk
        return Sniffed("audio", "mp3")
    return None


def _ebml_doctype(header: bytes) -> str | None:
    """The DocType inside the EBML header, whatever width its sizes are written in (an
    8-byte size is legal and some muxers write one)."""
    for element in ebml.elements(header, descend={EBML_HEADER_ID}, max_elements=32):
        if element.id == EBML_DOCTYPE_ID and element.size is not None:
            return _EBML_DOCTYPES.get(header[element.body:element.body + element.size])
    return None


def _quicktime_atoms(header: bytes) -> bool:
    """A QuickTime movie may begin with any top-level atom (`wide`, `mdat`, `free`, `moov`
    before any `ftyp`): walk the atoms the header holds until a moov or mdat shows."""
    for box in isobmff.boxes(header, max_boxes=16):
        if box.type not in _QUICKTIME_ATOMS:
            return False
        if box.type in (b"moov", b"mdat"):  # a movie's own atoms
            return True
    return False


# Formats whose header Pillow parses in Python. This runs in the sensor (the daemon), not in
# a worker: C header parsers (WebP, AVIF, HEIF) are left to the workers, where a crash or
# hang costs one file; those files simply declare no pixels here (lane by size only).
_SENSOR_FORMATS = ("JPEG", "PNG", "GIF", "TIFF", "BMP")


def declared_pixels(header: bytes) -> int | None:
    """Width x height from an image header alone, when the header holds it (no decode)."""
    own = _webp_pixels(header) or _ispe_pixels(header)
    if own is not None:
        return own
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(header), formats=_SENSOR_FORMATS) as im:
                return im.width * im.height
    except Image.DecompressionBombError as exc:
        # Pillow refuses to open it at all; its message still carries the declared size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        return int(found.group(1)) if found else None
    except Exception:  # noqa: BLE001 - a header we cannot parse simply declares nothing
        return None


def _webp_pixels(header: bytes) -> int | None:
    """A WebP's canvas from its first chunk (VP8X, VP8L or VP8), read in Python: Pillow's
    WebP header parser is C, and this runs in the sensor."""
    if header[:4] != b"RIFF" or header[8:12] != b"WEBP" or len(header) < 30:
        return None
    chunk = header[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(header[24:27], "little") + 1
        height = int.from_bytes(header[27:30], "little") + 1
        return width * height
    if chunk == b"VP8L" and header[20] == 0x2F:
        bits = int.from_bytes(header[21:25], "little")
        return ((bits & 0x3FFF) + 1) * (((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and header[23:26] == b"\x9d\x01\x2a":
        width = int.from_bytes(header[26:28], "little") & 0x3FFF
        height = int.from_bytes(header[28:30], "little") & 0x3FFF
        return width * height
    return None


def _ispe_pixels(header: bytes) -> int | None:
    """A HEIF or AVIF image's size from its `ispe` properties (the largest: a grid's tiles
    are smaller than the image they make), read in Python from the header bytes."""
    if header[4:8] != b"ftyp":
        return None
    largest, at = None, header.find(b"ispe")
    while at >= 4:
        box_size = int.from_bytes(header[at - 4:at], "big")
        if box_size == 20 and at + 16 <= len(header):  # size, type, version+flags, w, h
            width = int.from_bytes(header[at + 8:at + 12], "big")
            height = int.from_bytes(header[at + 12:at + 16], "big")
            largest = max(largest or 0, width * height)
        at = header.find(b"ispe", at + 4)
    return largest
