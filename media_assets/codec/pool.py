"""Run per-file work in isolated worker processes: both cores, a time limit and a memory cap
per file, and a crash or hang costs only that file."""

from __future__ import annotations

import math
import multiprocessing
import resource
import signal
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from pebble import ProcessExpired, ProcessPool

from media_assets.core.errors import Rejected, TransientError

TRANSIENT_ATTEMPTS = 3


def _init_worker(memory_mb: int) -> None:
    """Cap the worker's address space so one hostile file cannot exhaust the machine; no
    core files (a worker ended by its CPU-time limit would otherwise dump one)."""
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from media_assets.codec.images import register_plugins

    register_plugins()


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_limited(cpu_seconds: float | None, fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn(*args)` in this worker under a CPU-time limit of `cpu_seconds` (all threads).

    RLIMIT_CPU counts the process's whole life, so the soft limit is set to what the worker
    has used so far plus this file's allowance, and lifted again afterwards (the hard limit
    is never lowered: it could not be raised back). Past it the kernel sends SIGXCPU, whose
    default action ends the worker, even inside a decoder that never returns to Python; the
    pool reports that as `cpu_time_limit`."""
    if not cpu_seconds or cpu_seconds <= 0:
        return fn(*args)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(_cpu_used() + cpu_seconds)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    try:
        return fn(*args)
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))


def timed_call(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """Run `fn(*args)` and return (result, wall ms, CPU ms of the worker process, all its
    threads): per-file timings and cost."""
    started, started_cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    return (value, round((time.perf_counter() - started) * 1000, 2),
            round((time.process_time() - started_cpu) * 1000, 2))


@dataclass(frozen=True)
class Outcome:
    """A task's result, or the error that decided the file's fate."""

    value: Any = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class WorkerPool:
    """Worker processes, spawned on first use and reused until `close()`: one pool can serve
    every step of a run (spawning and importing the decoders costs a few hundred ms)."""

    def __init__(self, workers: int, memory_mb: int) -> None:
        self.workers = max(1, workers or multiprocessing.cpu_count())
        self.memory_mb = memory_mb
        self._pool: ProcessPool | None = None

    def _processes(self) -> ProcessPool:
        if self._pool is None or not self._pool.active:
            if multiprocessing.current_process().daemon:
                raise RuntimeError("decode workers cannot start in a daemonic process (e.g. a "
                                   "Celery prefork child): start Celery workers with "
                                   "--pool=solo")
            self._pool = ProcessPool(
                max_workers=self.workers, initializer=_init_worker, initargs=(self.memory_mb,),
                context=multiprocessing.get_context("spawn"),  # never fork a threaded process
            )
        return self._pool

    def run(
        self,
        tasks: Iterable[tuple[Hashable, Callable[..., Any], tuple[Any, ...]]],
        timeout_seconds: float,
        on_outcome: Callable[[Hashable, Outcome], None] | None = None,
        cpu_seconds: float | None = None,
    ) -> dict[Hashable, Outcome]:
        """Run `fn(*args)` for each (key, fn, args) and collect the outcomes by key, each
        under a wall-clock limit of `timeout_seconds` and (if given) a CPU-time limit of
        `cpu_seconds`.

        `on_outcome(key, outcome)` is called in this thread as each file finishes, so the
        caller stores results while the workers go on. Deterministic failures become
        `Rejected` (timeout, crash, out of memory, decoder errors); a `TransientError` is
        retried a bounded number of times, then raised: never a quarantine for a good file.
        """
        pending = list(tasks)
        outcomes: dict[Hashable, Outcome] = {}
        attempts: dict[Hashable, int] = {}
        try:
            while pending:
                pool = self._processes()
                futures = {pool.schedule(cpu_limited, args=(cpu_seconds, fn, *args),
                                         timeout=timeout_seconds): (key, fn, args)
                           for key, fn, args in pending}
                pending = []
                for future in as_completed(futures):
                    key, fn, args = futures[future]
                    outcome = _collect(future, timeout_seconds)
                    if isinstance(outcome.error, TransientError):
                        attempts[key] = attempts.get(key, 0) + 1
                        if attempts[key] >= TRANSIENT_ATTEMPTS:
                            raise outcome.error  # the step fails; its RetryPolicy takes over
                        pending.append((key, fn, args))
                        continue
                    outcomes[key] = outcome
                    if on_outcome is not None:
                        on_outcome(key, outcome)
        except BaseException:
            self.close()
            raise
        return outcomes

    def close(self) -> None:
        """Stop the workers. Must be called: worker processes outlive a forgotten pool."""
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _collect(future: Any, timeout_seconds: float) -> Outcome:
    try:
        return Outcome(value=future.result())
    except FutureTimeout:
        return Outcome(error=Rejected("timeout", f"no result within {timeout_seconds:g} s"))
    except ProcessExpired as exc:
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
