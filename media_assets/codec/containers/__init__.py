"""One bounded reader for the containers the decoder-free code parses itself: ISO-BMFF boxes
(MP4, MOV, M4A, HEIF, AVIF), EBML elements (Matroska, WebM) and FLAC metadata blocks.

Both the sensor's cheap probe (header bytes plus a few ranged reads; must never raise) and
intake's structure checks (a memory-mapped file; raise `Rejected` with a true reason) walk
the same code, so a size rule (64-bit `largesize`, size 0 = to the end, unknown-size EBML
elements) is written once. Every walk is bounded in the items it reads and in its depth,
and reads through a `Source` (bytes in hand, or a file or object read in bounded ranges).

Modes: lenient (`strict=False`) ends a level at the first header it cannot read; strict
raises `Rejected` ("truncated" or "corrupt") there instead. An item whose declared size runs
past its parent is yielded either way, with its declared size (callers weigh that
differently: the probe reads what is there, intake rejects it), and ends its level.
"""

from media_assets.codec.containers.source import (
    Buffer,
    BufferSource,
    RangedSource,
    ReadRange,
    Source,
    as_source,
    file_source,
)

__all__ = ["Buffer", "BufferSource", "RangedSource", "ReadRange", "Source", "as_source",
           "file_source"]
