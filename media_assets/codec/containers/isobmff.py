"""ISO base media file format boxes (ISO/IEC 14496-12): MP4, MOV, M4A, HEIF, AVIF."""

from __future__ import annotations

import struct
from collections.abc import Container, Iterator
from dataclasses import dataclass

from media_assets.codec.containers.source import Buffer, Source, as_source
from media_assets.core.errors import Rejected


@dataclass(frozen=True, slots=True)
class Box:
    """One box header: what it declares, and where its parent ends (`limit`)."""

    type: bytes
    offset: int
    header_len: int      # 8, or 16 with a 64-bit `largesize`
    size: int            # declared, header included (size 0: up to the end of the parent)
    depth: int           # 0 for the boxes at the walk's start
    limit: int | None    # the end of its parent (None: the file's size is unknown)

    @property
    def body(self) -> int:
        return self.offset + self.header_len

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def stop(self) -> int:
        """The end of what of it lies inside its parent."""
        return self.end if self.limit is None else min(self.end, self.limit)

    @property
    def overruns(self) -> bool:
        """Whether it declares more than its parent (or the file) holds."""
        return self.limit is not None and self.end > self.limit


def boxes(data: Buffer | Source, start: int = 0, end: int | None = None, *,
          descend: Container[bytes] = frozenset(), max_depth: int = 16,
          max_boxes: int = 10_000, strict: bool = False) -> Iterator[Box]:
    """The boxes in [start, end) in file order, each followed by its children when its type
    is in `descend` (`end` None: the source's size, which may be unknown).

    Bounds: boxes `max_depth` levels below `start` are not descended into (strict: that is
    `corrupt`), and the walk ends after `max_boxes` headers. A box running past its parent
    is yielded with its declared size (see `Box.overruns`; its children are read up to the
    parent's end) and ends its level."""
    source = as_source(data)
    stack = [(start, source.size if end is None else end, 0)]
    read = 0
    while stack:
        offset, limit, depth = stack[-1]
        if limit is not None and offset + 8 > limit:
            if strict and offset < limit:
                raise Rejected("truncated", f"a box header at byte {offset} runs past the end "
                                            f"of its parent")
            stack.pop()
            continue
        if read >= max_boxes:
            return
        read += 1
        box = _header(source, offset, limit, depth, strict)
        if box is None:
            stack.pop()
            continue
        stack[-1] = (box.end, limit, depth)
        yield box
        if box.type in descend:
            if depth >= max_depth:
                if strict:
                    raise Rejected("corrupt", f"boxes nested more than {max_depth} deep")
                continue
            stack.append((box.body, box.stop, depth + 1))


def _header(source: Source, offset: int, limit: int | None, depth: int,
            strict: bool) -> Box | None:
    """The box header at `offset`; None (strict: `Rejected`) when it cannot be read."""
    head = source.read(offset, 16)
    if limit is not None:
        head = head[:max(0, limit - offset)]
    if len(head) < 8:
        return _fail(strict, "truncated", f"a box header at byte {offset} runs past the end "
                                          f"of the data")
    size, kind = struct.unpack_from(">I4s", head)
    header_len = 8
    if size == 1:
        if len(head) < 16:
            return _fail(strict, "truncated", f"box {kind!r} at byte {offset} has no 64-bit "
                                              f"size")
        size, header_len = struct.unpack_from(">Q", head, 8)[0], 16
    elif size == 0:  # to the end of the file (or of the parent)
        if limit is None:
            return _fail(strict, "corrupt", f"box {kind!r} at byte {offset} runs to an "
                                            f"unknown end")
        size = limit - offset
    if size < header_len:
        return _fail(strict, "corrupt", f"box {kind!r} at byte {offset} declares {size} bytes")
    return Box(kind, offset, header_len, size, depth, limit)


def _fail(strict: bool, reason: str, detail: str) -> None:
    if strict:
        raise Rejected(reason, detail)
