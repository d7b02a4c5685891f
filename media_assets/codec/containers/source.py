"""Where a container walk reads from: bytes in hand, or a file or object read in a bounded
number of ranged reads."""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from typing import BinaryIO, Protocol

ReadRange = Callable[[int, int], bytes]  # (offset, size) -> at most size bytes
Buffer = bytes | bytearray | memoryview | mmap.mmap


class Source(Protocol):
    """Random access to a file's bytes; `size` is None when the total is unknown."""

    size: int | None

    def read(self, offset: int, length: int, *, partial: bool = False) -> bytes:
        """Up to `length` bytes at `offset`: fewer at the end of the file, or when a bounded
        source has spent its reads (`partial`: any part of them already in hand will do)."""
        ...


class BufferSource:
    """Bytes in hand: a header, a whole file, or a memory map of one (pages load lazily)."""

    def __init__(self, data: Buffer) -> None:
        self.data = data
        self.size: int | None = len(data)

    def read(self, offset: int, length: int, *, partial: bool = False) -> bytes:
        if offset < 0 or length <= 0:
            return b""
        return bytes(self.data[offset:offset + length])


class RangedSource:
    """A header in hand plus at most `max_reads` ranged reads of at least `chunk` bytes each
    (the sensor's reads of an object store, or seeks in a file). A failed read spends the
    rest of the budget: what it would have held is simply unknown."""

    def __init__(self, header: bytes, read_range: ReadRange | None, size: int | None, *,
                 chunk: int = 65536, max_reads: int = 3) -> None:
        self.windows = [(0, header)]
        self.read_range, self.size, self.chunk, self.reads = read_range, size, chunk, 0
        self.budget = max_reads if read_range else 0

    def read(self, offset: int, length: int, *, partial: bool = False) -> bytes:
        """From what was read when it covers the range (any part of it if `partial`), else
        from one more ranged read while the budget lasts."""
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


def file_source(handle: BinaryIO, *, chunk: int = 65536, max_reads: int = 8) -> RangedSource:
    """An open binary file read in at most `max_reads` seeks of `chunk` bytes: a walk over
    a large file touches only the headers it visits, never the media data between them."""
    size = os.fstat(handle.fileno()).st_size

    def read_range(offset: int, length: int) -> bytes:
        handle.seek(offset)
        return handle.read(length)

    return RangedSource(b"", read_range, size, chunk=chunk, max_reads=max_reads)


def as_source(data: Buffer | Source) -> Source:
    """A buffer wrapped as a `Source`; a `Source` as it is."""
    if isinstance(data, bytes | bytearray | memoryview | mmap.mmap):
        return BufferSource(data)
    return data
