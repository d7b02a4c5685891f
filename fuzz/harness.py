"""What the fuzzers run per input. Only `Rejected` (the file is bad: quarantine it with a
reason) may come out; any other exception, a crash or a hang is a finding."""

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from media_assets.codec import structure
from media_assets.codec.audio_preview import render_audio_preview
from media_assets.codec.av_probe import probe_av
from media_assets.codec.image_render import render_derivatives
from media_assets.codec.images import extract_metadata
from media_assets.codec.intake import stage_file
from media_assets.codec.poster import render_still
from media_assets.codec.rendition import render_web_rendition
from media_assets.codec.sniff import declared_pixels, sniff
from media_assets.codec.waveform import render_waveform
from media_assets.core.errors import Rejected
from media_assets.core.policy import DerivativeSpec, Limits, RenditionSpec, WaveformSpec

LIMITS = Limits(max_file_bytes=8 * 1024**2, max_pixels=4_000_000, max_frames=2_000,
                max_duration_seconds=120, max_metadata_bytes=1024**2)
THUMB = DerivativeSpec("thumbnail", 64, "webp", 60)
PREVIEW = DerivativeSpec("preview", 128, "jpeg", 60)
RENDITION = RenditionSpec(mode="always", long_edge=64, max_fps=10, preset="ultrafast")


def structure_input(data: bytes) -> None:
    """The decoder-free checks: sniffing and the sensor's header parse, every container
    walker, the EXIF walker."""
    kind = sniff(data[:65536])
    check = structure._CHECKS.get(kind.type or "")
    limits = dict(max_file_bytes=LIMITS.max_file_bytes, max_frames=LIMITS.max_frames,
                  max_metadata_bytes=LIMITS.max_metadata_bytes)
    declared_pixels(data[:65536])  # what the sensor parses in the daemon's process
    for call in (lambda: check(data, **limits) if check else None,
                 lambda: structure.exif_problem(data)):
        with contextlib.suppress(Rejected):
            call()
    if b"PK\x05\x06" in data:
        with tempfile.NamedTemporaryFile() as handle:
            handle.write(data)
            handle.flush()
            with contextlib.suppress(Rejected):
                structure._check_zip_polyglot(Path(handle.name), data)


def pipeline_input(data: bytes) -> None:
    """Intake (stream, hash, sniff, structure, probe/validate), then what the assets do with
    an accepted file: image metadata and derivatives; video poster and rendition; audio
    preview and waveform."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        source = root / "input"
        source.write_bytes(data)
        try:
            staged = stage_file(str(source), scratch, LIMITS, scratch)
            if staged.rejection is None:
                _derive(Path(staged.staged_path), staged.kind, root / "out")
        except Rejected:
            pass


def _derive(path: Path, kind: str, out: Path) -> None:
    out.mkdir()
    if kind == "image":
        extract_metadata(path, LIMITS.max_pixels)
        render_derivatives(path, [THUMB, PREVIEW], out, LIMITS.max_pixels)
    elif kind == "video":
        probe_av(path)
        render_still(path, "video", [THUMB], out)
        render_web_rendition(path, out / "rendition.mp4", RENDITION)
    elif kind == "audio":
        render_still(path, "audio", [THUMB], out)
        render_audio_preview(path, out / "preview.m4a", seconds=2)
        render_waveform(path, out, WaveformSpec(buckets=50, width=100, height=20))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "structure": structure_input,
    "pipeline": pipeline_input,
}
