"""EBML elements (RFC 8794): Matroska and WebM."""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass

from media_assets.codec.containers.source import Buffer, Source, as_source
from media_assets.core.errors import Rejected

EBML_HEADER = 0x1A45DFA3
SEGMENT = 0x18538067
CLUSTER = 0x1F43B675


@dataclass(frozen=True, slots=True)
class Vint:
    """An EBML variable-length integer of 1 to 8 bytes."""

    value: int   # without the length marker (an element size)
    raw: int     # with it (how element IDs are written: 0x1A45DFA3)
    length: int

    @property
    def unknown(self) -> bool:
        """All value bits set: as a size, "unknown" (runs to the end of the parent)."""
        return self.value == (1 << 7 * self.length) - 1


def read_vint(data: bytes, at: int = 0) -> Vint | None:
    """The variable-length integer at `at`; None when the bytes end first or the first byte
    is zero (a length over 8 bytes)."""
    if not 0 <= at < len(data) or data[at] == 0:
        return None
    length = 9 - data[at].bit_length()
    if at + length > len(data):
        return None
    raw = int.from_bytes(data[at:at + length], "big")
    return Vint(raw & ((1 << 7 * length) - 1), raw, length)


@dataclass(frozen=True, slots=True)
class Element:
    """One element header: what it declares, and where its parent ends (`limit`)."""

    id: int
    offset: int
    header_len: int      # its ID and size
    size: int | None     # None: unknown size (it runs to the end of its parent)
    depth: int           # 0 for the elements at the walk's start
    limit: int | None    # the end of its parent (None: the file's size is unknown)

    @property
    def body(self) -> int:
        return self.offset + self.header_len

    @property
    def end(self) -> int | None:
        """Where it declares it ends (None: unknown size)."""
        return None if self.size is None else self.body + self.size

    @property
    def stop(self) -> int | None:
        """The end of what of it lies inside its parent."""
        if self.end is None:
            return self.limit
        return self.end if self.limit is None else min(self.end, self.limit)


def elements(data: Buffer | Source, start: int = 0, end: int | None = None, *,
             descend: Container[int] = frozenset(), stop_at: Container[int] = frozenset(),
             max_depth: int = 16, max_elements: int = 10_000,
             strict: bool = False) -> Iterator[Element]:
    """The elements in [start, end) in file order, each followed by its children when its ID
    is in `descend` (`end` None: the source's size).

    An element of unknown size is the last of its level (what follows is inside it); an ID in
    `stop_at` ends its level unyielded (a Cluster: the header part of a file is over). A
    header is read as far as the data goes; a body, up to the parent's end. Bounds: elements
    `max_depth` levels below `start` are not descended into (strict: `corrupt`), and the walk
    ends after `max_elements` headers."""
    source = as_source(data)
    stack = [(start, source.size if end is None else end, 0)]
    read = 0
    while stack:
        offset, limit, depth = stack[-1]
        if limit is not None and offset >= limit:
            stack.pop()
            continue
        if read >= max_elements:
            return
        read += 1
        element = _header(source, offset, limit, depth, strict)
        if element is None or element.id in stop_at:
            stack.pop()
            continue
        if element.end is None:
            stack.pop()
        else:
            stack[-1] = (element.end, limit, depth)
        yield element
        if element.id in descend:
            if depth >= max_depth:
                if strict:
                    raise Rejected("corrupt", f"EBML elements nested more than {max_depth} "
                                              f"deep")
                continue
            stack.append((element.body, element.stop, depth + 1))


def _header(source: Source, offset: int, limit: int | None, depth: int,
            strict: bool) -> Element | None:
    """The element header at `offset`; None (strict: `Rejected`) when it cannot be read."""
    head = source.read(offset, 16)  # an ID and a size of at most 8 bytes each
    ident = read_vint(head, 0)
    if ident is None:
        return _fail(strict, head, 0, offset)
    size = read_vint(head, ident.length)
    if size is None:
        return _fail(strict, head, ident.length, offset + ident.length)
    return Element(ident.raw, offset, ident.length + size.length,
                   None if size.unknown else size.value, depth, limit)


def _fail(strict: bool, head: bytes, at: int, where: int) -> None:
    if not strict:
        return None
    if at < len(head) and head[at] == 0:
        raise Rejected("corrupt", f"invalid EBML length at byte {where}")
    raise Rejected("truncated", "an EBML element header runs past the end of the file")
