"""Apple's MakerNote: the content identifier that pairs a live photo's still with its movie.

Layout (as ExifTool documents it): "Apple iOS\\0", a 2-byte version, "MM", then a big-endian
IFD whose offsets count from the start of the MakerNote. Tag 0x0011 is the ContentIdentifier
string; the movie carries the same value as `com.apple.quicktime.content.identifier`."""

from __future__ import annotations

import struct

APPLE_PREFIX = b"Apple iOS\0"
CONTENT_IDENTIFIER_TAG = 0x0011
_IFD_START = 14
_ASCII = 2


def apple_content_identifier(maker_note: bytes | None) -> str | None:
    """The ContentIdentifier in an Apple MakerNote, or None (other makers, damaged notes)."""
    if not isinstance(maker_note, bytes | bytearray) or not maker_note.startswith(APPLE_PREFIX):
        return None
    try:
        (count,) = struct.unpack_from(">H", maker_note, _IFD_START)
        for index in range(min(count, 512)):
            tag, kind, length, offset = struct.unpack_from(
                ">HHII", maker_note, _IFD_START + 2 + 12 * index)
            if tag != CONTENT_IDENTIFIER_TAG or kind != _ASCII:
                continue
            start = _IFD_START + 2 + 12 * index + 8 if length <= 4 else offset
            raw = maker_note[start:start + length]
            return raw.split(b"\0", 1)[0].decode("ascii", "replace") or None
    except struct.error:
        return None
    return None


def apple_maker_note(content_identifier: str) -> bytes:
    """A minimal Apple MakerNote holding only a ContentIdentifier (for samples and tests)."""
    value = content_identifier.encode("ascii") + b"\0"
    ifd_size = 2 + 12 + 4
    entry = struct.pack(">HHII", CONTENT_IDENTIFIER_TAG, _ASCII, len(value),
                        _IFD_START + ifd_size)
    return APPLE_PREFIX + b"\0\x01MM" + struct.pack(">H", 1) + entry + bytes(4) + value
