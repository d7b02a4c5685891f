"""The batch run's one pass: every file of a batch goes through its whole chain in a worker
(`codec.file_pass`), and this side stores what each worker returns as soon as it returns it:
the original (put-if-absent, then its stored bytes re-hashed), its metadata, its derivatives,
or a quarantine record naming the stage and the reason. The next file's decode runs while
this one is written, so I/O and CPU overlap and no stage waits for the whole batch.

What was selected decides the chain: `originals` takes new files from the inbox (without it,
the batch's stored originals are worked on), a metadata asset extracts its kind's metadata,
each derivative asset renders its specs. Outputs the store already holds are not made again
unless `force`. Never imports dagster: the Dagster op wires resources in and reports.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any, Protocol

from media_assets.codec.derivatives import for_kind
from media_assets.codec.file_pass import (
    METADATA_DONE,
    METADATA_STAGES,
    FileJob,
    FileResult,
    chain_seconds,
    process_file,
    read_progress,
)
from media_assets.codec.intake import StagedFile, hash_file
from media_assets.codec.pool import Outcome, TaskKey, machine_may_be_at_fault
from media_assets.codec.sniff import sniff
from media_assets.codec.untrusted import display_names, open_untrusted
from media_assets.codec.worker import timed_call
from media_assets.core.errors import Rejected, machine_fault
from media_assets.core.policy import Policy
from media_assets.core.store import Inbox, ObjectStore, with_transient_retries
from media_assets.core.types import SAFE_STATUSES, FileEntry
from media_assets.operations.rollout import RENDER_MS_STEP
from media_assets.operations.usage import meter_of
from media_assets.records.layout import (
    derivative_key,
    first_arrival_key,
    metadata_key,
    original_key,
    spec_output_key,
)
from media_assets.records.manifest import (
    close_batch,
    load_manifest,
    load_step_results,
    mark_unreadable,
    quarantine,
    quarantine_records,
    save_manifest,
    save_step_results,
    save_step_timings,
)
from media_assets.records.metadata import metadata_version, save_metadata
from media_assets.records.retention import purged_contents, revive

# Step results the pass leaves for the checks and the catalog.
# Step results the last pass over the batch leaves for the checks of the same run, so they
# need not read every output again: {"run_id": ..., asset: {content id: {spec hash: problem
# or None}}} and {"run_id": ..., "content_ids": {content id: true}} (stored and re-hashed).
# Keyed by content id like every step result, so an erasure scrubs them.
VERIFIED_STEP = "pass_verified"
WITHOUT_COVER_STEP = "poster_without_cover"  # content id -> thumbnail spec hash looked for
FIXITY_STEP = "pass_fixity"
SAMPLE_EVERY = 16  # one output in this many is decoded completely, the rest header-checked


class Workers(Protocol):
    """The decode worker pool (see `codec.pool.WorkerPool`)."""

    def run(self, tasks: Sequence[tuple[TaskKey, Callable[..., Any], tuple[Any, ...]]],
            limits: Any, on_outcome: Callable[[TaskKey, Outcome], None] | None = None,
            timeout: float | None = None,
            retry_reason: Callable[[Outcome], str | None] | None = None,
            on_retry: Callable[[TaskKey], None] | None = None) -> dict[TaskKey, Outcome]: ...


FileLog = Callable[..., None]  # (level, event, content_id, source_name, **fields)


class DoneOracle:
    """Answers workers' questions "what does the store already hold for this content?"
    (`codec.file_pass.ask_oracle`) from a thread of this process, over a local socket: a
    worker learns a new file's content id only once it has hashed it, and only this process
    has the store."""

    def __init__(self, store: ObjectStore, policy: Policy, assets: tuple[str, ...]) -> None:
        self.store, self.policy, self.assets = store, policy, assets
        # A socket in a fresh private temp folder (a path under the store could be longer
        # than a socket address may be).
        self._authkey = secrets.token_bytes(16)
        self._listener = Listener(family="AF_UNIX", authkey=self._authkey)
        self._open: list[Connection] = []
        threading.Thread(target=self._serve, name="done-oracle", daemon=True).start()

    @property
    def address(self) -> tuple[str, bytes]:
        return str(self._listener.address), self._authkey

    def done(self, content_id: str, kind: str) -> list[str]:
        found = [METADATA_DONE] if self.store.exists(
            metadata_key(content_id, metadata_version(kind))) else []
        for derivative in for_kind(kind, self.assets):
            found += [s.spec_hash for s in derivative.specs_to_keep(self.policy, content_id)
                      if self.store.exists(spec_output_key(s, content_id))]
        return found

    def _serve(self) -> None:
        while True:
            try:
                connection = self._listener.accept()
            except (OSError, EOFError):
                return  # closed
            self._open.append(connection)
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: Connection) -> None:
        with connection:
            while True:
                try:
                    content_id, kind = connection.recv()
                    connection.send(self.done(content_id, kind))
                except (OSError, EOFError):
                    return

    def close(self) -> None:
        self._listener.close()
        for connection in self._open:
            connection.close()


class BatchNotReady(Exception):
    """The batch cannot run: no manifest, or (without `originals`) not ingested yet."""


@dataclass(frozen=True)
class Selection:
    """What this run of the pass makes."""

    originals: bool
    metadata_kinds: frozenset[str]
    derivative_assets: tuple[str, ...]
    force: bool = False


@dataclass
class AssetTally:
    """One asset's work in this pass."""

    made: int = 0
    reused: int = 0
    quarantined: int = 0
    content_ids: set[str] = field(default_factory=set)


@dataclass
class PassReport:
    """What the pass did: the batch's entries and per-asset tallies, for the assets' metadata
    and the checks."""

    batch_key: str
    entries: list[FileEntry]
    seconds: float
    tallies: dict[str, AssetTally]
    left_in_inbox: list[str]
    skipped_purged: list[tuple[str, str]]
    failed: set[str]  # content ids quarantined by a stage after intake
    metadata: dict[str, dict[str, Any]]  # extracted in this pass, by content id
    # files that ran again alone: key -> (first attempt's failure, final status)
    retried: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class _Job:
    """A file's place in the pass: its job for the worker and what settles it."""

    key: str  # inbox name, or content id for an original already stored
    job: FileJob
    entry: FileEntry | None = None  # set for originals already stored
    source: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where the bytes are read from
    released: bool = False
    scratch: Path = Path()  # the worker's folder for this file (outputs, progress)


def run_pass(store: ObjectStore, inbox: Inbox, policy: Policy, workers: Workers, *,
             batch_key: str, run_id: str, selection: Selection, log: FileLog) -> PassReport:
    """Take every file of the batch through the selected chain (see the module docstring)."""
    manifest = load_manifest(store, batch_key)
    if manifest is None:
        raise BatchNotReady(f"batch {batch_key!r} has no manifest in the store")
    if not selection.originals and manifest.get("files") is None:
        raise BatchNotReady(f"batch {batch_key!r} has not been ingested: materialise "
                            "`originals` for it first")
    batch = _BatchPass(store, inbox, policy, batch_key, run_id, selection, log, manifest)
    started = time.perf_counter()
    with batch.scratch() as scratch, ExitStack() as local:
        if selection.originals and not selection.force:
            oracle = DoneOracle(store, policy, selection.derivative_assets)
            local.callback(oracle.close)
            batch.oracle = oracle.address
        jobs = batch.plan(local, scratch)
        for i, job in enumerate(jobs):
            job.scratch = scratch / f"f{i}"
        tasks = [(i, timed_call, (process_file, job.job, str(job.scratch)))
                 for i, job in enumerate(jobs)]

        def settle(index: Hashable, outcome: Outcome) -> None:
            batch.settle(jobs[int(str(index))], outcome)

        def clear(index: Hashable) -> None:  # before a file runs again alone
            shutil.rmtree(jobs[int(str(index))].scratch, ignore_errors=True)

        # Each stage has its own time limit inside the worker; this is the outer backstop.
        timeout = chain_seconds(policy)
        workers.run(tasks, policy.limits, on_outcome=settle, timeout=timeout,
                    retry_reason=partial(retried_alone_because, timeout_seconds=timeout),
                    on_retry=clear)
    return batch.finish(time.perf_counter() - started)


def retried_alone_because(outcome: Outcome, timeout_seconds: float) -> str | None:
    """Why a file's chain should run again alone before the file is judged: its worker died
    in a way the machine may have caused (`codec.pool.machine_may_be_at_fault`), or a stage
    ran out of memory inside a worker that had decoded other files before (its heap may be
    the cause, a fresh worker's is not)."""
    reason = machine_may_be_at_fault(outcome, timeout_seconds)
    if reason is None and outcome.ok:
        result: FileResult = outcome.value[0]
        if result.failure is not None and result.failure.reason == "out_of_memory":
            return "out_of_memory"
    return reason


class _BatchPass:
    """The state of one batch's pass (its entries, tallies and step results)."""

    def __init__(self, store: ObjectStore, inbox: Inbox, policy: Policy, batch_key: str,
                 run_id: str, selection: Selection, log: FileLog,
                 manifest: dict[str, Any]) -> None:
        self.store, self.inbox, self.policy = store, inbox, policy
        self.batch_key, self.run_id, self.selection, self.log = batch_key, run_id, selection, log
        self.manifest = manifest
        self.entries: list[FileEntry] = []
        self.leaving: list[str] = []
        self.failed: set[str] = set()
        self.skipped_purged: list[tuple[str, str]] = []
        assets = ["originals", *(METADATA_STAGES[k] for k in sorted(selection.metadata_kinds)),
                  *selection.derivative_assets]
        self.tallies = {asset: AssetTally() for asset in assets}
        self.timings: dict[str, dict[str, float]] = {}
        self.render_ms: dict[str, dict[str, float]] = {}
        self.verified: dict[str, dict[str, dict[str, str | None]]] = {}
        self.fixity: dict[str, str] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self._count = -1
        # Audio files without cover art have no poster: remembered per spec, so a rerun
        # does not look again.
        self.without_cover: dict[str, str] = load_step_results(
            store, batch_key, WITHOUT_COVER_STEP) if "poster" in selection.derivative_assets \
            else {}
        self.meter = meter_of(store)
        self.staging: Path | None = None
        self.oracle: tuple[str, bytes] | None = None
        # files whose first attempt failed in a way the machine may have caused and that
        # ran again alone: key -> (first reason, final status)
        self.retried: dict[str, tuple[str, str]] = {}

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A scratch folder on the store's filesystem (staged files move in by rename),
        removed with everything a killed worker left in it."""
        path = Path(tempfile.mkdtemp(dir=self.store.staging_dir(), prefix="pass-"))
        self.staging = path
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    # ---------------------------------------------------------------------------------
    # Planning

    def plan(self, local: ExitStack, scratch: Path) -> list[_Job]:
        if self.selection.originals:
            return self._plan_intake(local, scratch)
        return self._plan_stored(local, scratch)

    def _plan_intake(self, local: ExitStack, scratch: Path) -> list[_Job]:
        """New files from the inbox (or released from quarantine); files an earlier run of
        this batch already settled are reused, their missing outputs made from the store."""
        manifest = self.manifest
        previous = {f["source_name"]: f for f in manifest.get("files") or []}
        self.sources = {s["inbox"]: s for s in manifest["sources"] if "inbox" in s}
        # Inbox names are untrusted: what is recorded is each name sanitised, unique within
        # the batch; the raw name only finds the file in the inbox.
        self.shown = display_names(self.sources)
        jobs: list[_Job] = []
        for source in manifest["sources"]:
            name = source.get("inbox")
            if "quarantine_key" in source:
                name = source["source_name"]
            recorded = previous.get(self.shown.get(name, name)) if name is not None else None
            if recorded is not None and recorded["status"] in SAFE_STATUSES:
                entry = FileEntry.from_record(recorded)  # settled by an earlier run
                self.entries.append(entry)
                self.tallies["originals"].reused += 1
                if name is not None and "quarantine_key" not in source:
                    self.leaving.append(name)  # removed only if still the file listed
                jobs.extend(self._stored_job(local, scratch, entry))
            elif "quarantine_key" in source and not self.store.exists(source["quarantine_key"]):
                self.entries.append(FileEntry(source_name=name or "?", status="missing",
                                              reason="gone_from_quarantine"))
            elif "quarantine_key" in source and name is not None:
                path = local.enter_context(self.store.local_path(source["quarantine_key"]))
                self.sources[name] = source
                jobs.append(_Job(name, self._intake_job(path, None, scratch), source=source,
                                 path=path, released=True))
            elif name is not None and self.inbox.exists(name):
                path = local.enter_context(self.inbox.local_path(name))
                jobs.append(_Job(name, self._intake_job(path, str(self.inbox.root), scratch),
                                 source=source, path=path))
            elif "content_id" in source:
                entry = self._from_store(source)
                self.entries.append(entry)
                jobs.extend(self._stored_job(local, scratch, entry))
            else:
                shown = self.shown.get(name, name or "?") if name is not None else "?"
                self.entries.append(FileEntry(source_name=shown, status="missing",
                                              reason="gone_from_inbox"))
        return jobs

    def _plan_stored(self, local: ExitStack, scratch: Path) -> list[_Job]:
        """Only later stages selected: the batch's stored originals, each once."""
        quarantined = set(quarantine_records(self.store, self.batch_key))
        purged = purged_contents(self.store)
        seen: set[str] = set()
        jobs: list[_Job] = []
        for record in self.manifest["files"]:
            entry = FileEntry.from_record(record)
            self.entries.append(entry)
            cid = entry.content_id
            if not entry.stored or cid is None or cid in seen or cid in quarantined:
                continue
            seen.add(cid)
            if cid in purged and not self.store.exists(entry.original_key or ""):
                self.skipped_purged.append((entry.source_name, purged[cid]))
                continue
            jobs.extend(self._stored_job(local, scratch, entry))
        return jobs

    def _intake_job(self, path: Path, inbox_root: str | None, scratch: Path) -> FileJob:
        return FileJob(source=str(path), staging_dir=str(scratch), policy=self.policy,
                       intake=True, inbox_root=inbox_root,
                       metadata_kinds=self.selection.metadata_kinds,
                       derivative_assets=self.selection.derivative_assets,
                       oracle=self.oracle, full_check=self._sampled())

    def _sampled(self) -> bool:
        """Every SAMPLE_EVERY-th file's outputs are decoded completely."""
        self._count += 1
        return self._count % SAMPLE_EVERY == 0

    def _stored_job(self, local: ExitStack, scratch: Path, entry: FileEntry) -> list[_Job]:
        """A job for a stored original's missing metadata and outputs (none when complete)."""
        cid, kind = entry.content_id, entry.kind or ""
        if not entry.stored or cid is None or entry.original_key is None:
            return []
        force = self.selection.force
        metadata = frozenset(
            k for k in self.selection.metadata_kinds & {kind}
            if force or not self.store.exists(metadata_key(cid, metadata_version(k))))
        for k in self.selection.metadata_kinds & {kind}:
            if k not in metadata:
                self.tallies[METADATA_STAGES[k]].reused += 1
        existing: set[str] = set()
        wanted = 0
        for derivative in for_kind(kind, self.selection.derivative_assets):
            for spec in derivative.specs_to_keep(self.policy, cid):
                wanted += 1
                if force:
                    continue
                if self.store.exists(spec_output_key(spec, cid)) or (
                        derivative.asset == "poster" and kind == "audio"
                        and self.without_cover.get(cid) == spec.spec_hash):
                    existing.add(spec.spec_hash)
            if derivative.specs_to_keep(self.policy, cid) and all(
                    s.spec_hash in existing
                    for s in derivative.specs_to_keep(self.policy, cid)):
                self.tallies[derivative.asset].reused += 1
        if not metadata and len(existing) >= wanted:
            return []
        if not self.store.exists(entry.original_key):
            return []  # the original's absence is the fixity check's finding
        with self.meter.attributing(cid) if self.meter else nullcontext():
            path = local.enter_context(self.store.local_path(entry.original_key))
        job = FileJob(source=str(path), staging_dir=str(scratch), policy=self.policy,
                      intake=False, kind=kind, content_id=cid, metadata_kinds=metadata,
                      derivative_assets=self.selection.derivative_assets,
                      skip_spec_hashes=frozenset(existing), full_check=self._sampled())
        return [_Job(cid, job, entry=entry, path=path)]

    def _from_store(self, source: dict[str, Any]) -> FileEntry:
        """A content id source (replay, rebuild): the bytes are already in the store."""
        cid = source["content_id"]
        name = source.get("source_name", cid)
        matches = [k for k in self.store.list(f"originals/{cid[:2]}/{cid[2:4]}/") if cid in k]
        if not matches:
            return FileEntry(source_name=name, status="missing", content_id=cid,
                             reason="not_in_store", duplicate=True)
        with self.store.open_read(matches[0]) as handle:
            sniffed = sniff(handle.read(65536))
        kind = sniffed.kind
        if kind in ("video", "audio"):  # an MP4 may hold only audio: its metadata says
            kind = "audio" if self.store.exists(metadata_key(cid, "audio-v1")) else "video"
        return FileEntry(source_name=name, status="ok", content_id=cid, kind=kind,
                         type=sniffed.type, bytes=self.store.size(matches[0]),
                         original_key=matches[0], duplicate=True)

    # ---------------------------------------------------------------------------------
    # Settling each file as its worker returns

    def settle(self, job: _Job, outcome: Outcome) -> None:
        result: FileResult | None = None
        wall_ms = cpu_ms = 0.0
        died_in: str | None = None
        if outcome.ok:
            result, wall_ms, cpu_ms = outcome.value
        else:  # the worker died (a time limit, the memory cap, a crash): where, and was the
            # file already staged? Then its original is stored and the stage named.
            died_in, staged = read_progress(job.scratch)
            if job.job.intake and staged is not None and died_in != "originals":
                result = FileResult(staged, staged.kind)
        if job.job.intake:
            entry = self._settle_intake(job, result, outcome.error, wall_ms, cpu_ms,
                                        outcome.retried)
            if entry is None:
                self._note_retry(job, outcome, self.entries[-1])
                return
        else:
            entry = job.entry
            assert entry is not None
            if self.meter and entry.content_id:
                self.meter.file(entry.content_id, entry.kind, entry.source_name).add(
                    cpu_seconds=cpu_ms / 1000, wall_seconds=wall_ms / 1000)
        cid = entry.content_id or ""
        if result is not None and outcome.ok and entry.stored:
            with self.meter.attributing(cid) if self.meter else nullcontext():
                self._keep(entry, result)
        if result is not None and result.failure is not None \
                and result.failure.stage != "originals":
            self._quarantine_stored(entry, result.failure.stage, Rejected(
                result.failure.reason, result.failure.detail), result.failure.error_class)
        elif not outcome.ok:  # the worker died on a stored original
            stage = died_in or self._first_stage(job.job)
            self._quarantine_stored(entry, stage, outcome.error, type(outcome.error).__name__)
        self._note_retry(job, outcome, entry.with_(status="quarantined")
                         if cid in self.failed else entry)
        if result is not None and result.scratch:
            shutil.rmtree(result.scratch, ignore_errors=True)

    def _note_retry(self, job: _Job, outcome: Outcome, entry: FileEntry) -> None:
        """Count and log a file that ran again alone, with how that ended."""
        if outcome.retried is None:
            return
        self.retried[job.key] = (outcome.retried, entry.status)
        self.log("warning" if entry.stored else "error", f"retried_alone_{entry.status}",
                 entry.content_id, entry.source_name, first_failure=outcome.retried)

    def _settle_intake(self, job: _Job, result: FileResult | None, error: Exception | None,
                       wall_ms: float, cpu_ms: float, retried: str | None = None
                       ) -> FileEntry | None:
        """Store (or quarantine) a new file; record it in the batch."""
        name = job.key
        staged = result.staged if result is not None else None
        if not job.released and not self.inbox.still_as_listed(
                name, job.source["size"], job.source["mtime"]):
            return self._still_being_written(job)
        if self.meter and staged is not None:
            self.meter.file(staged.content_id, staged.kind, name).add(
                cpu_seconds=cpu_ms / 1000, wall_seconds=wall_ms / 1000, bytes_read=staged.size)
        with self.meter.attributing(staged.content_id) if self.meter and staged \
                else nullcontext():
            entry = self._store_original(job, staged, error).with_(retried=retried)
        self.entries.append(entry)
        self.tallies["originals"].made += entry.stored and not entry.duplicate
        # A file that went through is not logged line by line (each line is an event-log
        # write, ~1 ms of the run's time per file): its timings are in its catalog row and
        # the batch's step results. Every file that did not go through is.
        if not entry.stored:
            self.tallies["originals"].quarantined += entry.status == "quarantined"
            self.log("warning", entry.status, entry.content_id, entry.source_name,
                     stage="originals", reason=entry.reason)
        if not job.released:
            if entry.status in SAFE_STATUSES:
                self.leaving.append(name)
            elif entry.status == "unreadable":
                mark_unreadable(self.store, name, job.source["size"], job.source["mtime"],
                                entry.detail or "")
        return entry if entry.stored else None

    def _still_being_written(self, job: _Job) -> None:
        """A file written to since the sensor listed it: its writer was not done, so what the
        worker read may be partial. Nothing is stored or quarantined; it stays in the inbox
        and the next batch takes it once it has settled (the batch records why)."""
        entry = FileEntry(source_name=self.shown.get(job.key, job.key), status="unreadable",
                          reason="still_being_written",
                          detail="the file changed while this batch read it; it stays in the "
                                 "inbox for the next batch")
        self.entries.append(entry)
        self.log("warning", entry.status, None, entry.source_name, stage="originals",
                 reason=entry.reason)

    def _store_original(self, job: _Job, staged: StagedFile | None,
                        error: Exception | None) -> FileEntry:
        """Move one staged file into the store (or quarantine) and describe the outcome."""
        source = job.source
        arrived = datetime.fromtimestamp(source.get("mtime", time.time()), UTC).isoformat()
        shown = self.shown.get(job.key, job.key)
        base = FileEntry(source_name=shown, status="ok", arrived_at=arrived,
                         intake_ms=staged.elapsed_ms if staged else None)
        if staged is None:  # the worker itself failed: keep the bytes in quarantine
            reason = error.reason if isinstance(error, Rejected) else "intake_error"
            try:  # copied (never through a link, only a file of its own) while hashing
                content_id, copy = self._copy_untrusted(job)
            except OSError as exc:  # unreadable now: it stays in the inbox, nothing is lost
                if (fault := machine_fault(exc)) is not None:  # a full disk is not the file's
                    raise fault from exc
                return base.with_(status="unreadable", reason="unreadable",
                                  detail=f"{type(exc).__name__}: {exc}")
            return self._quarantined(base, content_id, reason, str(error), error, copy)
        staged_path = Path(staged.staged_path)
        base = base.with_(content_id=staged.content_id, bytes=staged.size, kind=staged.kind,
                          type=staged.type, width=staged.width, height=staged.height,
                          duration_seconds=staged.duration_seconds)
        if staged.rejection:
            reason, detail = staged.rejection
            return self._quarantined(base, staged.content_id, reason, detail, None, staged_path)
        key = original_key(staged.content_id, staged.extension)
        linked = with_transient_retries(self.store.put_file_if_absent)(key, staged_path) \
            and self.store.links_staged_files
        # Fixity: a staged file linked into place is the very file the worker hashed while
        # writing it (and fsynced), so it verifies by construction; an upload, or an object
        # that was already there (written long ago), is read back and hashed.
        if not linked and not self._verified(key, staged.content_id):
            # An object that does not hash to its key is damaged: repair it from the verified
            # staged bytes. If even that does not verify, the store itself is failing.
            with_transient_retries(self.store.put_file)(key, staged_path)
            if not self._verified(key, staged.content_id):
                self.store.delete(key)
                return self._quarantined(base, staged.content_id, "fixity_mismatch",
                                         "stored bytes differ from the source", None,
                                         staged_path)
        self.fixity[staged.content_id] = self.run_id
        first = self._first_arrival(staged.content_id)
        return base.with_(duplicate=not first, original_key=key)

    def _copy_untrusted(self, job: _Job) -> tuple[str, Path]:
        """(content id, staged copy) of a file, read without following links."""
        assert self.staging is not None and job.path is not None
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.staging, prefix=".failed.tmp-")
        inbox_root = None if job.released else str(self.inbox.root)
        with open_untrusted(job.path, inbox_root) as src, os.fdopen(fd, "wb") as dst:
            while chunk := src.read(1024 * 1024):
                digest.update(chunk)
                dst.write(chunk)
        return digest.hexdigest(), Path(tmp)

    def _verified(self, key: str, content_id: str) -> bool:
        with self.store.local_path(key) as stored:
            return hash_file(stored) == content_id

    def _first_arrival(self, content_id: str) -> bool:
        """True when this batch is the first to bring this content (put-if-absent)."""
        key = first_arrival_key(content_id)
        self.store.put_bytes_if_absent(key, self.batch_key.encode())
        return self.store.read_bytes(key).decode() == self.batch_key

    def _quarantined(self, base: FileEntry, content_id: str, reason: str, detail: str,
                     error: Exception | None, bytes_path: Path | None) -> FileEntry:
        key = quarantine(
            self.store, bytes_path=bytes_path, content_id=content_id,
            batch_key=self.batch_key, source_name=base.source_name, reason=reason,
            detail=detail, error_class=type(error).__name__ if error else "Rejected",
            stage="originals", run_id=self.run_id)
        return base.with_(content_id=content_id, status="quarantined", kind=None, type=None,
                          bytes=None, width=None, height=None, duplicate=False,
                          original_key=None, quarantine_key=key, reason=reason, detail=detail)

    def _keep(self, entry: FileEntry, result: FileResult) -> None:
        """Write a stored file's metadata and derivatives; record timings and checks."""
        cid, kind = entry.content_id or "", entry.kind or ""
        for stage, ms in result.stage_ms.items():
            self.timings.setdefault(stage, {})[cid] = ms
        stage = METADATA_STAGES.get(kind)
        if result.metadata is not None and stage in self.tallies:
            save_metadata(self.store, cid, kind, result.metadata)
            self.metadata[cid] = result.metadata
            self.tallies[stage].made += 1
        elif stage in self.tallies and result.failure is None:
            self.tallies[stage].reused += 1  # the store held it already
        if stage in self.tallies:
            self.tallies[stage].content_ids.add(cid)
        by_asset = {d.name: d for d in for_kind(kind, self.selection.derivative_assets)}
        specs = {s.spec_hash: s for d in by_asset.values()
                 for s in d.specs_to_keep(self.policy, cid)}
        for output in result.outputs:
            spec = specs[output.spec_hash]
            self.store.put_file(spec_output_key(spec, cid), Path(output.path))
            for extension, path in output.companions.items():
                key = derivative_key(spec.name, spec.spec_hash, cid, extension)
                self.store.put_file(key, Path(path))
            self.render_ms.setdefault(output.spec_hash, {})[cid] = output.render_ms
            asset = by_asset[output.derivative].asset
            self.verified.setdefault(asset, {}).setdefault(cid, {})[output.spec_hash] = \
                output.problem
        poster = by_asset.get("thumbnail")
        if kind == "audio" and poster is not None and poster.asset == "poster" \
                and result.failure is None:
            spec = poster.current_spec(self.policy, cid)
            if not self.store.exists(spec_output_key(spec, cid)):
                self.without_cover[cid] = spec.spec_hash
        if result.failure is None:
            for derivative in by_asset.values():
                self.tallies[derivative.asset].content_ids.add(cid)
            for asset in {by_asset[o.derivative].asset for o in result.outputs}:
                self.tallies[asset].made += 1

    def _quarantine_stored(self, entry: FileEntry, stage: str, error: Exception | None,
                           error_class: str) -> None:
        """Quarantine a stored original that a later stage could not process."""
        cid = entry.content_id or ""
        reason = error.reason if isinstance(error, Rejected) else "error"
        self.failed.add(cid)
        for asset, tally in self.tallies.items():
            if asset != "originals" and _stage_of(asset) == stage:
                tally.quarantined += 1
        with self.store.local_path(entry.original_key or "") as path:
            quarantine(self.store, bytes_path=path, content_id=cid, batch_key=self.batch_key,
                       source_name=entry.source_name, reason=reason, detail=str(error),
                       error_class=error_class, stage=stage, run_id=self.run_id)
        self.log("warning", "quarantined", cid, entry.source_name, stage=stage,
                 error_class=error_class, reason=reason)

    def _first_stage(self, job: FileJob) -> str:
        kind = job.kind or ""
        if kind in job.metadata_kinds:
            return METADATA_STAGES[kind]
        derivatives = for_kind(kind, job.derivative_assets)
        return derivatives[0].stage if derivatives else "originals"

    # ---------------------------------------------------------------------------------
    # Finishing: the manifest, the inbox, the step results

    def finish(self, seconds: float) -> PassReport:
        kept: list[str] = []
        if self.selection.originals:
            entries = _mark_repeats(self.entries)
            stored = {e.content_id for e in entries
                      if e.stored and e.content_id and e.original_key
                      and self.store.exists(e.original_key)}
            revive(self.store, {c for c in stored if c})  # purged bytes arrived again
            self.manifest["files"] = [e.to_record() for e in
                                      sorted(entries, key=lambda e: e.source_name)]
            self.manifest["intake_run_id"] = self.run_id
            self.manifest["policy_version"] = self.policy.stamp
            save_manifest(self.store, self.manifest)
            self.entries = entries
            # Files leave the inbox only now: their bytes are stored and verified (or
            # quarantined) and the manifest linking each name to its content id is durable.
            # A file replaced or modified since the sensor saw it stays for the next batch.
            kept = [name for name in self.leaving if not self.inbox.remove_if_unchanged(
                name, self.sources[name]["size"], self.sources[name]["mtime"])]
            close_batch(self.store, self.batch_key)  # its inbox names are free again
        for stage, ms in self.timings.items():
            save_step_timings(self.store, self.batch_key, stage, ms)
        if self.without_cover:
            save_step_results(self.store, self.batch_key, WITHOUT_COVER_STEP,
                              self.without_cover)
        if self.render_ms:
            timings = load_step_results(self.store, self.batch_key, RENDER_MS_STEP)
            for spec_hash, ms in self.render_ms.items():
                timings[spec_hash] = {**timings.get(spec_hash, {}), **ms}
            save_step_results(self.store, self.batch_key, RENDER_MS_STEP, timings)
        save_step_results(self.store, self.batch_key, VERIFIED_STEP,
                          {"run_id": self.run_id, **self.verified})
        save_step_results(self.store, self.batch_key, FIXITY_STEP,
                          {"run_id": self.run_id, "content_ids": dict.fromkeys(self.fixity, True)})
        entries = sorted(self.entries, key=lambda e: e.source_name)
        return PassReport(batch_key=self.batch_key, entries=entries,
                          seconds=seconds, tallies=self.tallies, left_in_inbox=kept,
                          skipped_purged=self.skipped_purged, failed=self.failed,
                          metadata=self.metadata, retried=self.retried)


def _mark_repeats(entries: list[FileEntry]) -> list[FileEntry]:
    """The same bytes under several names in one batch: the first name (in name order) is
    the arrival, the later ones are duplicates. Decided by name once every file is settled,
    never by which worker finished first, so a rerun of the batch flags the same names."""
    seen: set[str] = set()
    marked = []
    for entry in sorted(entries, key=lambda e: e.source_name):
        if entry.stored and entry.content_id in seen:
            entry = entry.with_(duplicate=True)
        if entry.stored and entry.content_id:
            seen.add(entry.content_id)
        marked.append(entry)
    return marked


def _stage_of(asset: str) -> str:
    """The stage name an asset's failures are recorded under."""
    from media_assets.codec.derivatives import BY_ASSET

    return BY_ASSET[asset].stage if asset in BY_ASSET else asset
