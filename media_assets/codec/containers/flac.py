"""FLAC metadata blocks (RFC 9639, section 8), and the ID3v2 tag some FLAC, MP3 and AAC
files start with."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from media_assets.codec.containers.source import Buffer, Source, as_source
from media_assets.core.errors import Rejected

MARKER = b"fLaC"
STREAMINFO = 0


@dataclass(frozen=True, slots=True)
class Block:
    """One metadata block header (type 0 STREAMINFO, 1 PADDING, ... 6 PICTURE)."""

    type: int
    last: bool    # the last metadata block: audio frames follow
    offset: int
    length: int   # of its body, after the 4-byte header

    @property
    def body(self) -> int:
        return self.offset + 4

    @property
    def end(self) -> int:
        return self.offset + 4 + self.length


def id3v2_length(head: bytes) -> int:
    """Bytes an ID3v2 tag at the start takes (header, body, footer); 0 when there is none."""
    if head[:3] != b"ID3" or len(head) < 10:
        return 0
    size = 0
    for byte in head[6:10]:  # "syncsafe": 7 bits a byte
        size = (size << 7) | (byte & 0x7F)
    return 10 + size + (10 if head[5] & 0x10 else 0)


def blocks(data: Buffer | Source, start: int, *, max_blocks: int = 1024,
           strict: bool = False) -> Iterator[Block]:
    """The metadata blocks from `start` (just after the `fLaC` marker) up to the one flagged
    last. A header cut short ends the walk (strict: `truncated`); so does a block running past
    the end of the data, after it is yielded with its declared length; and `max_blocks`."""
    source = as_source(data)
    offset = start
    for _ in range(max_blocks):
        head = source.read(offset, 4)
        if len(head) < 4:
            if strict:
                raise Rejected("truncated", "a FLAC metadata block header runs past the end "
                                            "of the file")
            return
        block = Block(head[0] & 0x7F, bool(head[0] & 0x80), offset,
                      int.from_bytes(head[1:4], "big"))
        yield block
        if block.last or (source.size is not None and block.end > source.size):
            return
        offset = block.end
