"""Is a run's worker process still there?

Dagster's default run launcher cannot tell whether a run worker lives, so when a whole
machine (or `dagster dev`) dies mid-run the run stays STARTED, holding its lane's queue slot,
until someone ends it. A run worker logs its pid when it starts; on the machine that ran it,
that pid either still names a process that started before the log line (the worker) or not
(gone, or reused by a later process after a restart). Elsewhere the run's `max_runtime` tag
(`run_limits.py`) ends it instead. No project imports: the daemon loads this with the
instance's run launcher."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1", "0.0.0.0"})
START_SLACK_SECONDS = 2.0  # /proc/stat's boot time is whole seconds; clocks may step a little


@dataclass(frozen=True)
class WorkerLiveness:
    """What the local machine says about a run worker: `alive` is None when it cannot say."""

    alive: bool | None
    why: str


def process_started_at(pid: int, proc: Path = PROC) -> float | None:
    """When process `pid` started (epoch seconds), or None when there is no such process or
    it is a zombie (it has exited; only its exit status is left)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        boot = next(int(line.split()[1]) for line in (proc / "stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def run_worker_liveness(pid: int | None, logged_at: float | None, host: str | None,
                        proc: Path = PROC) -> WorkerLiveness:
    """Whether the run worker that logged `pid` at `logged_at` still runs. Only a worker
    launched on this machine (its code server's host is local) can be checked here."""
    if pid is None or logged_at is None:
        return WorkerLiveness(None, "the run worker has not logged its pid yet")
    if (host or "") not in LOCAL_HOSTS:
        return WorkerLiveness(None, f"the run worker runs on {host}, not on this machine")
    started = process_started_at(pid, proc)
    if started is None:
        return WorkerLiveness(False, f"its run worker (pid {pid}) is gone")
    if started > logged_at + START_SLACK_SECONDS:
        return WorkerLiveness(False, f"its run worker (pid {pid}) is gone; that pid now "
                                     "names a process started after it")
    return WorkerLiveness(True, f"its run worker (pid {pid}) runs")
