"""Inside a decode worker process: how it starts (it dies with its pool's process, a capped
address space, no core files, the limit signals at their default action), and how each task
runs: on one of the machine's core slots, under a wall-clock and a CPU-time limit that the
kernel enforces even inside a decoder, its CPU time noted so that the pool can tell a slow
file from a starved one. `codec/pool.py` is the other side: the pool that schedules the
tasks and judges what comes back."""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from media_assets.codec.slots import CoreSlots
from media_assets.core.errors import TransientError

# How long a file may wait for a free core before the wait counts as the machine's trouble
# (a TransientError: retried, then the step fails), never as the file's.
SLOT_WAIT_SECONDS = 1800.0
WATCHDOG_SECONDS = 0.5
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# How often a worker notes the CPU time its current task has used, so that when the task ends
# the worker (a time limit) the pool can tell a slow file from a starved one.
METER_SECONDS = 0.25

_slots: CoreSlots | None = None  # in a worker: the machine's core slots (None = not shared)
_meter: _TaskMeter | None = None  # in a worker: where it notes its task's CPU time


class _TaskMeter:
    """In a worker: a thread that writes, every `METER_SECONDS`, to `<folder>/<pid>` the
    wall-clock limit in force (the task's, or its current stage's: `grant_time`) and the CPU
    time used since it was set. The worker may be ended by the kernel at any moment (that is
    how time limits work); the last figures it wrote survive it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / str(os.getpid())
        self.limit: tuple[float, float] | None = None  # (seconds, CPU time when granted)
        threading.Thread(target=self._loop, name="task-meter", daemon=True).start()

    def start(self, seconds: float) -> None:
        self.limit = (seconds, _cpu_used())
        self._write()

    def stop(self) -> None:
        self.limit = None

    def _write(self) -> None:
        limit = self.limit
        if limit is None:
            return
        with contextlib.suppress(OSError):
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(f"{_cpu_used() - limit[1]:.3f} {limit[0]:.3f}")
            os.replace(tmp, self.path)

    def _loop(self) -> None:
        while True:
            time.sleep(METER_SECONDS)
            self._write()


def noted_cpu(meter_dir: Path, pid: int | None) -> tuple[float, float] | None:
    """(CPU seconds used, wall-clock limit) of worker `pid`'s last time limit, as last noted
    (None: unknown)."""
    if pid is None:
        return None
    try:
        used, limit = (meter_dir / str(pid)).read_text().split()
        return float(used), float(limit)
    except (OSError, ValueError):
        return None


def init_worker(memory_mb: int, parent_pid: int, slot_dir: str | None, slots: int,
                 meter_dir: str | None = None) -> None:
    """Tie the worker's life to its pool's process, cap its address space so one hostile
    file cannot exhaust the machine, no core files (a worker ended by its CPU-time limit
    would otherwise dump one), and the default action (end the worker) for the signals of
    the per-file limits, SIGALRM and SIGXCPU (an ignored signal stays ignored across exec)."""
    global _slots, _meter
    _die_with_parent(parent_pid)
    if meter_dir is not None:
        _meter = _TaskMeter(Path(meter_dir))
    for limit_signal in (signal.SIGALRM, signal.SIGXCPU):
        signal.signal(limit_signal, signal.SIG_DFL)
    if slot_dir is not None:
        _slots = CoreSlots(Path(slot_dir), slots)
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from media_assets.codec.images import register_plugins

    register_plugins()


def _die_with_parent(parent_pid: int) -> None:
    """End this worker as soon as `parent_pid` is gone, however it died (`kill -9` too).

    The kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG). It fires when the
    *thread* that started this process exits, so `WorkerPool` starts workers only from
    threads that live as long as the pool (see `WorkerPool._start`). A watchdog thread also
    polls the parent pid: belt and braces where prctl is missing (not Linux)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog remains
    if os.getppid() != parent_pid:  # died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog",
                     daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:  # an orphan is re-parented (to init or a subreaper)
        time.sleep(WATCHDOG_SECONDS)
    os._exit(1)


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


def on_a_core(timeout_seconds: float, slot_wait_seconds: float, cpu_seconds: float | None,
              fn: Callable[..., Any], *args: Any) -> Any:
    """In a worker: wait for one of the machine's core slots, then run `fn(*args)` holding it,
    under a wall-clock limit of `timeout_seconds` and a CPU-time limit of `cpu_seconds`.

    Both limits start once the slot is held, so a file is never charged for waiting behind
    other runs (on a busy machine its wall time would otherwise be a share of a core). The
    wall limit is a SIGALRM timer left at its default action: the kernel ends the worker,
    even inside a decoder, and the pool reports `timeout`. No slot within
    `slot_wait_seconds` is the machine's trouble, not the file's: a TransientError."""
    slots = _slots
    if slots is None:
        return _limited(timeout_seconds, cpu_seconds, fn, *args)
    try:
        slot = slots.acquire(slot_wait_seconds)
    except OSError as exc:  # the slot folder's trouble, not the file's
        raise TransientError(f"core slots in {slots.directory}: {exc}") from exc
    if slot is None:
        raise TransientError(f"no free core slot within {slot_wait_seconds:g} s "
                             f"({slots.count} slots in {slots.directory})")
    try:
        return _limited(timeout_seconds, cpu_seconds, fn, *args)
    finally:
        slots.release(slot)


def _limited(timeout_seconds: float, cpu_seconds: float | None, fn: Callable[..., Any],
             *args: Any) -> Any:
    meter = _meter
    if meter is not None and timeout_seconds > 0:
        meter.start(timeout_seconds)
    if timeout_seconds > 0:
        signal.setitimer(signal.ITIMER_REAL, timeout_seconds)
    try:
        return cpu_limited(cpu_seconds, fn, *args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if meter is not None:
            meter.stop()


def grant_time(seconds: float, cpu_factor: float | None = None) -> None:
    """In a worker, inside a task: give the task's next stage `seconds` of wall clock (and
    `cpu_factor` x that of CPU time) from now, replacing what was left. A file's chain calls
    it at each stage, so each stage has its own limit (a video's poster has the video time
    limit, its header checks the per-file one) and a hang in any of them still ends the
    worker. Outside a time-limited task it does nothing."""
    if seconds <= 0 or signal.getitimer(signal.ITIMER_REAL)[0] <= 0:
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    if _meter is not None:
        _meter.start(seconds)
    if cpu_factor:
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if soft != hard:  # cpu_limited set a soft limit for this task
            allowance = math.ceil(_cpu_used() + seconds * cpu_factor)
            resource.setrlimit(resource.RLIMIT_CPU, (
                allowance if hard == resource.RLIM_INFINITY else min(allowance, hard), hard))


def timed_call(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """Run `fn(*args)` and return (result, wall ms, CPU ms of the worker process, all its
    threads): per-file timings and cost."""
    started, started_cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    return (value, round((time.perf_counter() - started) * 1000, 2),
            round((time.process_time() - started_cpu) * 1000, 2))
