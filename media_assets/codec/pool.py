"""Run per-file work in isolated worker processes: both cores, a time limit and a memory cap
per file, and a crash or hang costs only that file. However many runs share a machine, at
most one file per core is worked on at once (machine-wide core slots), and no worker outlives
the process that owns its pool. This is the pool's side (schedule, collect, judge, retry);
what runs inside a worker is `codec/worker.py`."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future, as_completed
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessPool

from media_assets.codec.slots import machine_cores, slots_dir
from media_assets.codec.worker import SLOT_WAIT_SECONDS, init_worker, noted_cpu, on_a_core
from media_assets.core.errors import Rejected, TransientError

TaskKey = TypeVar("TaskKey", bound=Hashable)  # what a task's outcome is filed under
TRANSIENT_ATTEMPTS = 3
# pebble's own timeout is only a backstop behind the worker's kernel-enforced limits: it
# covers the slot wait, the file's time limit and this much more.
BACKSTOP_SECONDS = 10.0
# A task that timed out having used less CPU than this share of its wall-clock limit spent
# most of it waiting (a busy machine, a stalled disk), not decoding: it is retried alone.
STARVED_CPU_SHARE = 0.5
# Worker deaths that may come from the machine (the OOM killer, a neighbour's memory, a
# broken pool) rather than from the file: such a file is retried alone before it is judged.
RETRIED_ALONE = frozenset({"worker_crashed", "out_of_memory"})
# pebble aborts every queued task of a pool (BrokenProcessPool, "All workers expired") when a
# worker dies while no task runs on it (killed idle, or while it starts). None of those files
# did anything: the pool is restarted and they are scheduled again, this many times at most.
POOL_RESTARTS = 5
POOL_POLL_SECONDS = 1.0  # how often a wait for results checks that the pool is still alive


@dataclass(frozen=True)
class Outcome:
    """A task's result, or the error that decided the file's fate. `retried` names the
    failure of a first attempt that was retried alone (this outcome is the retry's);
    `cpu_seconds` is what a task ended by its time limit had used, when known."""

    value: Any = None
    error: Exception | None = None
    retried: str | None = None
    cpu_seconds: float | None = None  # used under the time limit that ended the task
    time_limit: float | None = None  # that limit (a stage's may be shorter than the task's)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Started:
    """A running pebble pool and the thread that started it, which lives until the pool is
    stopped: a worker's PR_SET_PDEATHSIG fires when the thread that spawned it exits."""

    pool: ProcessPool
    size: int
    owner: threading.Thread
    release: threading.Event


class WorkerPool:
    """Worker processes, spawned on first use and reused until `close()`: one pool can serve
    every step of a run (spawning and importing the decoders costs a few hundred ms).

    `workers` (0 = one per core) is both this pool's most processes and the machine's core
    slots: with `share_cores`, all pools on the machine that use the same slot folder (by
    default: this user's) together work on at most that many files at once (pools asking
    for different counts share the lower slots, so the largest count bounds them all). A
    pool never starts more workers than it has had files at once."""

    def __init__(self, workers: int, memory_mb: int, *, share_cores: bool = True,
                 slot_wait_seconds: float = SLOT_WAIT_SECONDS) -> None:
        self.workers = max(1, workers or machine_cores())
        self.memory_mb = memory_mb
        self.share_cores = share_cores
        self.slot_wait_seconds = slot_wait_seconds
        self._started: _Started | None = None
        # removed by close(), made again by the next start
        self._meter_dir = Path(tempfile.mkdtemp(prefix="media-assets-meter-"))

    def _processes(self, files: int) -> ProcessPool:
        """The running pool, (re)started with enough workers for `files` (up to `workers`):
        grown by a restart between calls, never shrunk."""
        wanted = min(self.workers, max(1, files))
        started = self._started
        if started is not None and started.pool.active and started.size >= wanted:
            return started.pool
        if multiprocessing.current_process().daemon:
            raise RuntimeError("decode workers cannot start in a daemonic process (e.g. a "
                               "Celery prefork child): start Celery workers with "
                               "--pool=solo")
        size = max(wanted, started.size if started is not None else 0)
        self.close()
        self._started = self._start(size)
        return self._started.pool

    def _start(self, size: int) -> _Started:
        """Start a pebble pool from a thread of its own that stays until `close()`. pebble
        spawns the first workers in the thread that first uses the pool, and respawns (after
        a crash or a timeout) in its manager thread, which lives as long as the pool; a
        caller's thread may end while the pool is kept (a step thread), so it must not be the
        workers' parent thread."""
        slot_dir = str(slots_dir()) if self.share_cores else None
        self._meter_dir.mkdir(parents=True, exist_ok=True)
        pool = ProcessPool(
            max_workers=size, initializer=init_worker,
            initargs=(self.memory_mb, os.getpid(), slot_dir, self.workers,
                      str(self._meter_dir)),
            context=multiprocessing.get_context("spawn"),  # never fork a threaded process
        )
        ready, release = threading.Event(), threading.Event()
        failure: list[BaseException] = []

        def own() -> None:
            try:
                if not pool.active:  # starts the pool: its first workers are ours
                    raise RuntimeError("the decode pool did not start")
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                failure.append(exc)
                return
            finally:
                ready.set()
            release.wait()

        owner = threading.Thread(target=own, name="decode-pool-owner", daemon=True)
        owner.start()
        ready.wait()
        if failure:
            raise failure[0]
        return _Started(pool, size, owner, release)

    def run(
        self,
        tasks: Iterable[tuple[TaskKey, Callable[..., Any], tuple[Any, ...]]],
        timeout_seconds: float,
        on_outcome: Callable[[TaskKey, Outcome], None] | None = None,
        cpu_seconds: float | None = None,
        retry_reason: Callable[[Outcome], str | None] | None = None,
        on_retry: Callable[[TaskKey], None] | None = None,
    ) -> dict[TaskKey, Outcome]:
        """Run `fn(*args)` for each (key, fn, args) and collect the outcomes by key, each
        under a wall-clock limit of `timeout_seconds` and (if given) a CPU-time limit of
        `cpu_seconds`, both counted from when the file gets a core.

        `on_outcome(key, outcome)` is called in this thread as each file finishes, so the
        caller stores results while the workers go on. Deterministic failures become
        `Rejected` (timeout, crash, out of memory, decoder errors); a `TransientError` is
        retried a bounded number of times, then raised: never a quarantine for a good file.

        Transient versus poison: a task whose outcome has a `retry_reason` (by default
        `machine_may_be_at_fault`: its worker crashed or ran out of memory, or it timed out
        while starved of CPU) is not judged yet. Once every other task is done it runs again
        alone, in a fresh worker, with the same limits (`on_retry(key)` first, to clear what
        the dead attempt left); that second outcome is the file's, marked `retried`."""
        pending = list(tasks)
        outcomes: dict[TaskKey, Outcome] = {}
        alone: list[tuple[TaskKey, Callable[..., Any], tuple[Any, ...], str]] = []
        reason_of = retry_reason or partial(machine_may_be_at_fault,
                                            timeout_seconds=timeout_seconds)
        try:
            attempts: dict[TaskKey, int] = {}
            restarts = 0
            while pending:
                pool = self._processes(len(pending))
                # plain Futures: pebble's ProcessFuture narrows `_state` to its own enum, which
                # as_completed's protocol rejects though it is a str at run time
                futures: dict[Future[Any], tuple[TaskKey, Callable[..., Any], tuple[Any, ...]]]
                futures = {self._schedule(pool, timeout_seconds, cpu_seconds, fn, args):
                           (key, fn, args) for key, fn, args in pending}
                pending = []
                aborted = []
                for future in _completed(futures, pool):
                    key, fn, args = futures[future]
                    if future.cancelled() or not future.done():  # the pool broke first
                        aborted.append((key, fn, args))
                        continue
                    try:
                        outcome = _collect(future, timeout_seconds, self._meter_dir)
                    except BrokenProcessPool:
                        aborted.append((key, fn, args))
                        continue
                    if isinstance(outcome.error, TransientError):
                        attempts[key] = attempts.get(key, 0) + 1
                        if attempts[key] >= TRANSIENT_ATTEMPTS:
                            raise outcome.error  # the step fails; its RetryPolicy takes over
                        pending.append((key, fn, args))
                        continue
                    reason = reason_of(outcome)
                    if reason is not None:
                        alone.append((key, fn, args, reason))
                        continue
                    outcomes[key] = outcome
                    if on_outcome is not None:
                        on_outcome(key, outcome)
                if aborted:
                    restarts += 1
                    if restarts > POOL_RESTARTS:
                        raise BrokenProcessPool(f"the decode pool broke {restarts} times")
                    self.close()  # the next round starts a fresh pool
                    pending.extend(aborted)
            for key, fn, args, reason in alone:
                if on_retry is not None:
                    on_retry(key)
                outcome = replace(self._run_alone(timeout_seconds, cpu_seconds, fn, args),
                                  retried=reason)
                outcomes[key] = outcome
                if on_outcome is not None:
                    on_outcome(key, outcome)
        except BaseException:
            self.close()
            raise
        return outcomes

    def _schedule(self, pool: ProcessPool, timeout_seconds: float, cpu_seconds: float | None,
                  fn: Callable[..., Any], args: tuple[Any, ...]) -> Future[Any]:
        slot_wait = self.slot_wait_seconds if self.share_cores else 0.0
        # pebble's own timeout is only a backstop behind the worker's kernel-enforced limits
        backstop = slot_wait + timeout_seconds + BACKSTOP_SECONDS if timeout_seconds > 0 \
            else None
        return pool.schedule(on_a_core, args=(timeout_seconds, slot_wait, cpu_seconds, fn,
                                              *args), timeout=backstop)

    def _run_alone(self, timeout_seconds: float, cpu_seconds: float | None,
                   fn: Callable[..., Any], args: tuple[Any, ...]) -> Outcome:
        """One task in a fresh pool of one worker, nothing else in flight in this pool."""
        self.close()
        transient, restarts = 0, 0
        try:
            while True:
                pool = self._processes(1)
                [future] = _completed([self._schedule(pool, timeout_seconds, cpu_seconds, fn,
                                                      args)], pool)
                try:
                    if future.cancelled() or not future.done():
                        raise BrokenProcessPool("the decode pool stopped before the task ran")
                    outcome = _collect(future, timeout_seconds, self._meter_dir)
                except BrokenProcessPool:
                    restarts += 1
                    if restarts > POOL_RESTARTS:
                        raise
                    self.close()
                    continue
                if not isinstance(outcome.error, TransientError):
                    return outcome
                transient += 1
                if transient >= TRANSIENT_ATTEMPTS:
                    raise outcome.error
        finally:
            self.close()  # the next call starts as many workers as it needs

    def close(self) -> None:
        """Stop the workers. Must be called: without it they live until this process ends."""
        started, self._started = self._started, None
        if started is not None:
            started.pool.stop()
            started.pool.join()
            started.release.set()  # only now: the owner thread's exit kills its workers
            started.owner.join()
        shutil.rmtree(self._meter_dir, ignore_errors=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _completed(futures: Iterable[Future[Any]], pool: ProcessPool) -> Iterator[Future[Any]]:
    """Each future as it completes, like `as_completed`, but never waiting on a broken pool:
    when pebble aborts a pool (a worker died while no task ran on it) it fails the tasks it
    had dispatched, while a task still in its inbound queue is never failed and its future
    would wait forever. Once the pool is no longer active and nothing completes, the
    remaining futures are cancelled and yielded (the caller schedules them again)."""
    waiting = set(futures)
    while waiting:
        yielded = 0
        try:  # one waiter for all futures per second, not one per future per completion
            for future in as_completed(waiting, timeout=POOL_POLL_SECONDS):
                waiting.discard(future)
                yielded += 1
                yield future
        except FutureTimeout:
            if not yielded and not pool.active:
                for future in waiting:
                    future.cancel()
                yield from list(waiting)
                return


def machine_may_be_at_fault(outcome: Outcome, timeout_seconds: float) -> str | None:
    """Why a failed task should be retried alone before it is judged (None: judge it now).

    A crashed worker or an exhausted memory cap may be the machine's doing (the OOM killer
    picks the biggest process, a long-lived worker's heap fragments); a timeout is, when the
    task used under `STARVED_CPU_SHARE` of its wall-clock limit in CPU (it was waiting, not
    decoding). `cpu_time_limit` never is: a file that burns its whole CPU allowance would
    burn it again."""
    error = outcome.error
    if not isinstance(error, Rejected):
        return None
    if error.reason in RETRIED_ALONE:
        return error.reason
    limit = outcome.time_limit or timeout_seconds
    if error.reason == "timeout" and outcome.cpu_seconds is not None \
            and outcome.cpu_seconds < STARVED_CPU_SHARE * limit:
        return "timeout"
    return None


def _collect(future: Future[Any], timeout_seconds: float, meter_dir: Path) -> Outcome:
    try:
        return Outcome(value=future.result())
    except FutureTimeout:
        return Outcome(error=Rejected("timeout", f"no result within {timeout_seconds:g} s"))
    except ProcessExpired as exc:
        if exc.exitcode == -signal.SIGALRM:
            noted = noted_cpu(meter_dir, exc.pid)
            if noted is None:
                return Outcome(error=Rejected("timeout", "a stage ran past its time limit"))
            used, limit = noted
            return Outcome(error=Rejected("timeout", f"a stage ran past its {limit:g} s time "
                                          f"limit ({used:.1f} s of CPU used)"),
                           cpu_seconds=used, time_limit=limit)
        if exc.exitcode == -signal.SIGXCPU:
            return Outcome(error=Rejected("cpu_time_limit", "the worker used up its CPU time"))
        return Outcome(error=Rejected("worker_crashed", f"exit code {exc.exitcode}"))
    except MemoryError:
        return Outcome(error=Rejected("out_of_memory", "worker memory cap reached"))
    except (Rejected, TransientError) as exc:
        return Outcome(error=exc)
    except BrokenProcessPool:
        raise  # the pool itself is unusable: that is the step's failure, not the file's
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's, not the batch's
        return Outcome(error=Rejected("decode_error", f"{type(exc).__name__}: {exc}"))
