"""Run per-file work in isolated worker processes: both cores, a time limit and a memory cap
per file, and a crash or hang costs only that file."""

from __future__ import annotations

import atexit
import multiprocessing
import resource
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from pebble import ProcessExpired, ProcessPool

from media_assets.media.errors import Rejected, TransientError

TRANSIENT_ATTEMPTS = 3


def _init_worker(memory_mb: int) -> None:
    """Cap the worker's address space so one hostile file cannot exhaust the machine."""
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from media_assets.media.images import register_plugins

    register_plugins()


def timed_call(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Run `fn(*args)` and return (result, elapsed milliseconds): per-file timings."""
    started = time.perf_counter()
    value = fn(*args)
    return value, round((time.perf_counter() - started) * 1000, 2)


@dataclass(frozen=True)
class Outcome:
    """A task's result, or the error that decided the file's fate."""

    value: Any = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_isolated(
    tasks: Iterable[tuple[Hashable, Callable[..., Any], tuple[Any, ...]]],
    *,
    workers: int,
    timeout_seconds: float,
    memory_mb: int,
) -> dict[Hashable, Outcome]:
    """Run `fn(*args)` for each (key, fn, args) in a process pool and collect outcomes by key.

    Deterministic failures become `Rejected` (timeout, crash, out of memory, decoder errors);
    `TransientError`s are retried a bounded number of times before they are reported.
    """
    pending = list(tasks)
    outcomes: dict[Hashable, Outcome] = {}
    if not pending:
        return outcomes
    attempts: dict[Hashable, int] = {}
    pool = _shared_pool(workers or multiprocessing.cpu_count(), memory_mb)
    try:
        while pending:
            futures = {
                key: (pool.schedule(fn, args=args, timeout=timeout_seconds), fn, args)
                for key, fn, args in pending
            }
            pending = []
            for key, (future, fn, args) in futures.items():
                outcome = _collect(future, timeout_seconds)
                if isinstance(outcome.error, TransientError):
                    attempts[key] = attempts.get(key, 0) + 1
                    if attempts[key] < TRANSIENT_ATTEMPTS:
                        pending.append((key, fn, args))
                        continue
                outcomes[key] = outcome
    except BaseException:
        _discard_pool(pool)
        raise
    return outcomes


# Worker processes are spawned once per process and reused by every step of a run: spawning
# and importing the decoders costs a few hundred milliseconds per pool.
_POOLS: dict[tuple[int, int], ProcessPool] = {}


def _shared_pool(size: int, memory_mb: int) -> ProcessPool:
    key = (max(1, size), memory_mb)
    pool = _POOLS.get(key)
    if pool is None or not pool.active:
        pool = ProcessPool(max_workers=key[0], initializer=_init_worker, initargs=(memory_mb,),
                           context=multiprocessing.get_context("spawn"))
        _POOLS[key] = pool
    return pool


def _discard_pool(pool: ProcessPool) -> None:
    for key, known in list(_POOLS.items()):
        if known is pool:
            del _POOLS[key]
    pool.stop()
    pool.join()


@atexit.register
def shutdown_pools() -> None:
    """Stop every shared pool (at exit, or when a caller wants its workers gone)."""
    for pool in list(_POOLS.values()):
        _discard_pool(pool)


def _collect(future: Any, timeout_seconds: float) -> Outcome:
    try:
        return Outcome(value=future.result())
    except FutureTimeout:
        return Outcome(error=Rejected("timeout", f"no result within {timeout_seconds:g} s"))
    except ProcessExpired as exc:
        return Outcome(error=Rejected("worker_crashed", f"exit code {exc.exitcode}"))
    except MemoryError:
        return Outcome(error=Rejected("out_of_memory", "worker memory cap reached"))
    except (Rejected, TransientError) as exc:
        return Outcome(error=exc)
    except BrokenProcessPool:
        raise  # the pool itself is unusable: that is the step's failure, not the file's
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's, not the batch's
        return Outcome(error=Rejected("decode_error", f"{type(exc).__name__}: {exc}"))
