"""Identify a file by its first bytes (never by its name) and sort it into a lane."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import filetype
from PIL import Image

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
    return Sniffed("other", ext)


# Formats whose header Pillow parses in Python. This runs in the sensor (the daemon), not in
# a worker: C header parsers (WebP, AVIF, HEIF) are left to the workers, where a crash or
# hang costs one file; those files simply declare no pixels here (lane by size only).
_SENSOR_FORMATS = ("JPEG", "PNG", "GIF", "TIFF", "BMP")


def declared_pixels(header: bytes) -> int | None:
    """Width x height from an image header alone, when the header holds it (no decode)."""
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
