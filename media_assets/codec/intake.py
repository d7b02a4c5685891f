"""Stage one incoming file: stream it once into the store's staging area while hashing it,
then validate it from its magic bytes and header. Runs inside a worker process."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

import filetype

from media_assets.codec.av_probe import validate_av
from media_assets.codec.images import probe_image
from media_assets.codec.sniff import Sniffed, sniff
from media_assets.codec.structure import check_structure
from media_assets.codec.untrusted import open_untrusted
from media_assets.core.errors import Rejected, classify_os_errors
from media_assets.core.policy import Limits

MAX_XML_DEPTH = 64  # XMP nests a few levels; thousands is an attack on the parser

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StagedFile:
    """A file copied into staging, named by its content id, with the verdict on it."""

    content_id: str
    size: int
    kind: str
    type: str | None
    extension: str
    staged_path: str
    rejection: tuple[str, str] | None = None  # (reason, detail)
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    elapsed_ms: float | None = None


def hash_file(path: Path) -> str:
    """SHA-256 of a file, streamed (used to verify fixity after storing)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def stage_file(source: str, staging_dir: str, limits: Limits,
               inbox_root: str | None = None) -> StagedFile:
    """Copy `source` into `staging_dir` durably, hashing as it streams; then validate it.

    The bytes are read exactly once, from a file opened without following links; with
    `inbox_root`, only a single-linked regular file really inside it is read (else
    `UnsafeEntry`, an OSError: the file stays where it is). Validation never raises for a
    bad file: the verdict is returned as `rejection` so the caller quarantines the staged
    bytes.
    """
    started = time.perf_counter()
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=staging_dir, prefix=".intake.tmp-")
    size = 0
    header = b""
    try:
        with classify_os_errors(), open_untrusted(source, inbox_root) as src, \
                os.fdopen(fd, "wb") as dst:
            while chunk := src.read(CHUNK):
                if not header:
                    header = chunk[:65536]
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    sniffed = sniff(header)
    staged: dict = dict(
        content_id=digest.hexdigest(), size=size, kind=sniffed.kind, type=sniffed.type,
        extension=sniffed.extension, staged_path=tmp,
    )
    try:
        kind, width, height, duration = _validate(Path(tmp), size, sniffed, limits)
    except Rejected as rejected:
        return StagedFile(**staged, rejection=(rejected.reason, rejected.detail),
                          elapsed_ms=_ms_since(started))
    staged["kind"] = kind  # an MP4 holding only audio is audio
    return StagedFile(**staged, width=width, height=height, duration_seconds=duration,
                      elapsed_ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _check_xml(path: Path, size: int, max_bytes: int) -> None:
    """A sidecar must be small, well-formed XML, without a DOCTYPE (entities: expansion
    bombs, external references) and not nested deeper than XMP ever is."""
    if size > max_bytes:
        raise Rejected("too_large", f"sidecar of {size} bytes > limit {max_bytes}")
    parser = expat.ParserCreate()
    depth = 0

    def doctype(*_: object) -> None:
        raise Rejected("hostile_metadata", "XML with a DOCTYPE (entity declarations)")

    def start(*_: object) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:
            raise Rejected("hostile_metadata", f"XML nested more than {MAX_XML_DEPTH} deep")

    def end(*_: object) -> None:
        nonlocal depth
        depth -= 1

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        with open(path, "rb") as handle:
            parser.ParseFile(handle)
    except expat.ExpatError as exc:
        ended_early = exc.code in (expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS],
                                   expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_TOKEN],
                                   expat.errors.codes[expat.errors.XML_ERROR_PARTIAL_CHAR])
        reason = "truncated" if ended_early else "corrupt"  # (expat reports those at EOF)
        raise Rejected(reason, f"not well-formed XML: {exc}") from exc


def _media_kind_of(file_type: str | None) -> str | None:
    """'image', 'video' or 'audio' when the magic-byte library knows `file_type` as one."""
    known = filetype.get_type(ext=file_type) if file_type else None
    kind = known.mime.split("/")[0] if known else None
    return kind if kind in ("image", "video", "audio") else None


def _validate(path: Path, size: int, sniffed: Sniffed,
              limits: Limits) -> tuple[str, int | None, int | None, float | None]:
    """(kind, width, height, duration) of an acceptable file, else `Rejected`."""
    if size == 0:
        raise Rejected("empty", "zero-byte file")
    if size > limits.max_file_bytes:
        raise Rejected("too_large", f"{size} bytes > limit {limits.max_file_bytes}")
    if sniffed.kind not in ("image", "video", "audio", "sidecar"):
        media = _media_kind_of(sniffed.type)
        if media:  # a real image, video or audio format, just not one we process
            raise Rejected("unsupported_type", f"recognised as {str(sniffed.type).upper()} "
                                               f"{media}; "
                                               "not among the formats this pipeline processes")
        found = sniffed.type or "unknown content"
        raise Rejected("unsupported_type", f"{found} is not an image, video or audio file")
    if sniffed.type not in limits.allowed_types:
        raise Rejected("unsupported_type", f"recognised as {str(sniffed.type).upper()} "
                                           f"{sniffed.kind}; not among the policy's allowed "
                                           "formats (limits.allowed_types)")
    if sniffed.kind == "sidecar":
        _check_xml(path, size, limits.max_sidecar_bytes)
        return "sidecar", None, None, None
    if sniffed.kind != "image":
        # What a video or audio file declares (sizes, sample tables) is checked before
        # FFmpeg parses it; then its header limits, then one frame must decode.
        _check_structure(path, sniffed, limits)
        return validate_av(path, limits.max_duration_seconds, limits.max_pixels,
                           max_frames=limits.max_frames)
    try:
        probe = probe_image(path, limits.max_pixels, max_frames=limits.max_frames)
    except Rejected as rejected:
        if rejected.reason == "corrupt":  # say why, when the structure tells (truncated...)
            _check_structure(path, sniffed, limits)
        raise
    _check_structure(path, sniffed, limits)  # polyglots, hostile metadata, truncation
    return "image", probe.width, probe.height, None


def _check_structure(path: Path, sniffed: Sniffed, limits: Limits) -> None:
    check_structure(path, sniffed.type, max_file_bytes=limits.max_file_bytes,
                    max_frames=limits.max_frames, max_metadata_bytes=limits.max_metadata_bytes)
