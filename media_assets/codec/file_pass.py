"""One pass per file, in a worker process: read the bytes once (hashed while they stream into
staging), check their structure, read their metadata, decode once for every derivative of
their kind, check each output from the bytes in hand, and return one typed result with the
time each stage took. Nothing waits for the rest of the batch.

A bad file never raises here: the stage that refused it and why come back in the result, so
the caller quarantines it. Only a `TransientError` (the disk or the store hiccuped) escapes,
for the pool to retry; a crash, a time limit or the memory cap ends the worker and the pool
reports it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

from media_assets.codec.av_probe import probe_av
from media_assets.codec.derivatives import Output, RenderContext, Renderer, Spec, for_kind
from media_assets.codec.images import extract_metadata
from media_assets.codec.intake import StagedFile, stage_file
from media_assets.codec.worker import grant_time
from media_assets.core.errors import Rejected, TransientError, machine_fault
from media_assets.core.policy import Limits, Policy

# The metadata each media kind gets, and the stage (asset) that extracts it.
METADATA_STAGES = {"image": "image_metadata", "video": "video_metadata",
                   "audio": "audio_metadata"}


@dataclass(frozen=True)
class FileJob:
    """What to do with one file. Either `intake` (stage `source` from the inbox, or from
    quarantine for a released file) or work on an original already in the store (`kind`
    and `content_id` known). Which specs a file's derivatives take can depend on its content
    id (a canary's fraction), so they are chosen here, once the bytes are hashed."""

    source: str  # a local path to the bytes
    staging_dir: str
    policy: Policy
    intake: bool
    inbox_root: str | None = None  # read only a regular file really inside it
    kind: str | None = None
    content_id: str | None = None
    metadata_kinds: frozenset[str] = frozenset()
    derivative_assets: tuple[str, ...] = ()  # the selected derivative assets
    skip_spec_hashes: frozenset[str] = frozenset()  # outputs the store already holds
    # Where to ask, once a new file is hashed, what the store already holds for its content
    # (its metadata, outputs by spec hash), so the same bytes again cost one hash and no
    # decode: (address, authkey) of the batch's `DoneOracle`. None: make everything.
    oracle: tuple[str, bytes] | None = None
    full_check: bool = False  # decode every output completely (a sample of the batch)


@dataclass(frozen=True)
class StageFailure:
    stage: str
    reason: str
    detail: str
    error_class: str


@dataclass(frozen=True)
class FileResult:
    """Everything the pass learnt about one file. `failure` names the stage that refused it;
    what came before it (the staged bytes, the metadata) is kept."""

    staged: StagedFile | None
    kind: str | None
    metadata: dict[str, Any] | None = None
    outputs: tuple[Output, ...] = ()
    failure: StageFailure | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)
    scratch: str | None = None  # the folder holding this file's outputs


def process_file(job: FileJob, scratch: str) -> FileResult:
    """Take one file through its whole chain (see the module docstring)."""
    timings: dict[str, float] = {}
    staged: StagedFile | None = None
    kind = job.kind
    path = Path(job.source)
    progress = Progress(Path(scratch), job.policy)
    if job.intake:
        progress.enter("originals", None)
        started = time.perf_counter()
        staged = stage_file(job.source, job.staging_dir, job.policy.limits,
                            job.inbox_root)
        timings["originals"] = _ms(started)
        if staged.rejection is not None:
            reason, detail = staged.rejection
            return FileResult(staged, staged.kind, failure=StageFailure(
                "originals", reason, detail, "Rejected"), stage_ms=timings)
        progress.staged = staged
        kind, path = staged.kind, Path(staged.staged_path)
        if job.oracle is not None and kind in METADATA_STAGES:
            done = ask_oracle(job.oracle, staged.content_id, kind)
            job = replace(job, skip_spec_hashes=job.skip_spec_hashes | done,
                          metadata_kinds=job.metadata_kinds - (
                              {kind} if METADATA_DONE in done else set()))
    metadata: dict[str, Any] | None = None
    stage = METADATA_STAGES.get(kind or "")
    try:
        if stage and kind in job.metadata_kinds:
            progress.enter(stage, kind)
            started = time.perf_counter()
            metadata = _metadata(path, kind or "", job.policy.limits)
            timings[stage] = _ms(started)
        outputs: list[Output] = []
        content_id = staged.content_id if staged else job.content_id or ""
        for stage, render, specs in _render_groups(job, kind or "", content_id):
            progress.enter(stage, kind)
            started = time.perf_counter()
            outputs += render(path, kind or "", specs, Path(scratch), _context(job))
            timings[stage] = timings.get(stage, 0.0) + _ms(started)
    except TransientError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a stage is this file's...
        if (fault := machine_fault(exc)) is not None:  # ...unless the disk filled up
            raise fault from exc
        return FileResult(staged, kind, metadata, failure=_failure(stage or "originals", exc),
                          stage_ms=timings, scratch=scratch)
    return FileResult(staged, kind, metadata, tuple(outputs), stage_ms=timings,
                      scratch=scratch)


def stage_seconds(policy: Policy, kind: str | None, stage: str) -> float:
    """A stage's time limit: reading and checking a file and its metadata have the per-file
    limit; rendering a video's or an audio file's derivatives has that kind's limit."""
    if stage == "originals" or stage in METADATA_STAGES.values() or kind == "image":
        return policy.limits.per_file_timeout_seconds
    return policy.video.timeout_seconds if kind == "video" else policy.audio.timeout_seconds


def chain_seconds(policy: Policy) -> float:
    """The longest a file's whole chain may take (each stage within its own limit): the
    pool's outer limit, a backstop behind the per-stage ones."""
    per_file = policy.limits.per_file_timeout_seconds
    renders = {kind: len({d.render for d in for_kind(kind)}) for kind in METADATA_STAGES}
    return 2 * per_file + max(n * stage_seconds(policy, kind, "render")
                              for kind, n in renders.items())


class Progress:
    """Where a file's chain is, kept in its scratch folder, so that when a stage ends the
    worker (a time limit, the memory cap, a crash) the caller still knows which stage it was
    and, once the bytes were staged, can store the original and quarantine it at that stage
    instead of losing what was already verified. Each stage also gets its own time limit."""

    FILE = "progress.json"

    def __init__(self, folder: Path, policy: Policy) -> None:
        self.folder, self.policy = folder, policy
        self.staged: StagedFile | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def enter(self, stage: str, kind: str | None) -> None:
        grant_time(stage_seconds(self.policy, kind, stage), self.policy.limits.cpu_time_factor)
        record = {"stage": stage, "staged": asdict(self.staged) if self.staged else None}
        tmp = self.folder / f".{self.FILE}.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.folder / self.FILE)


def read_progress(folder: Path) -> tuple[str | None, StagedFile | None]:
    """(the stage a dead worker was in, the staged file if staging had finished)."""
    try:
        record = json.loads((folder / Progress.FILE).read_text())
    except (OSError, ValueError):
        return None, None
    staged = record.get("staged")
    if staged and staged.get("rejection") is not None:
        staged["rejection"] = tuple(staged["rejection"])
    return record.get("stage"), StagedFile(**staged) if staged else None


METADATA_DONE = "metadata"  # the oracle's word for "its metadata is stored"
_oracle_connections: dict[str, Connection] = {}


def ask_oracle(oracle: tuple[str, bytes], content_id: str, kind: str) -> frozenset[str]:
    """What the store already holds for a content: METADATA_DONE and spec hashes. One
    connection per worker process and oracle, kept for the batch."""
    address, authkey = oracle
    connection = _oracle_connections.get(address)
    if connection is None or connection.closed:
        connection = _oracle_connections[address] = Client(address, authkey=authkey)
    try:
        connection.send((content_id, kind))
        return frozenset(connection.recv())
    except (OSError, EOFError) as exc:
        _oracle_connections.pop(address, None)
        raise TransientError(f"the batch's output oracle is gone: {exc}") from exc


def _render_groups(job: FileJob, kind: str, content_id: str
                   ) -> list[tuple[str, Renderer, list[Spec]]]:
    """(stage, renderer, specs) for the file's derivatives: derivatives that share a renderer
    share one decode."""
    groups: dict[Renderer, tuple[str, list[Spec]]] = {}
    for derivative in for_kind(kind, job.derivative_assets):
        specs = [s for s in derivative.specs_to_keep(job.policy, content_id)
                 if s.spec_hash not in job.skip_spec_hashes]
        if specs and derivative.render is not None:
            stage, taken = groups.setdefault(derivative.render, (derivative.stage, []))
            taken.extend(s for s in specs if s not in taken)
    return [(stage, render, specs) for render, (stage, specs) in groups.items()]


def _context(job: FileJob) -> RenderContext:
    policy = job.policy
    return RenderContext(max_pixels=policy.limits.max_pixels,
                         draft_edge=max(spec.long_edge for spec in policy.derivatives),
                         poster_at=policy.video.poster_at, full_check=job.full_check)


def _metadata(path: Path, kind: str, limits: Limits) -> dict[str, Any]:
    if kind == "image":
        return extract_metadata(path, limits.max_pixels)
    return probe_av(path)


def _failure(stage: str, exc: BaseException) -> StageFailure:
    if isinstance(exc, Rejected):
        return StageFailure(stage, exc.reason, exc.detail, "Rejected")
    if isinstance(exc, MemoryError):
        return StageFailure(stage, "out_of_memory", "worker memory cap reached", "MemoryError")
    return StageFailure(stage, "decode_error", f"{type(exc).__name__}: {exc}",
                        type(exc).__name__)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
