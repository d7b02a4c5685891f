"""Measurements shared by the benchmarks: hashing, /proc memory of a process and of a process
tree (summed, and per role of a `dagster dev` tree), CPU time."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages divided among their users (no double counting)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, comm) for every process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2:].split()
        table[int(entry.name)] = (int(fields[1]), comm)
    return table


def tree_pids(root_pid: int, table: dict[int, tuple[int, str]] | None = None) -> list[int]:
    """`root_pid` and all its descendants (root first, parents before children)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in (table if table is not None else proc_table()).items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop(0)
        tree.append(pid)
        todo.extend(sorted(children.get(pid, [])))
    return tree


def cmdline(pid: int, limit: int = 160) -> str:
    """The process's command line (`?` once it has gone), cut at `limit` characters."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:limit]


# ---------------------------------------------------------------------------------------------
# Memory per role of the `dagster dev` process tree


def role_of(command: str) -> str | None:
    """The role a process of the tree plays, from its command line (None: its parent's)."""
    if "dagster_webserver" in command or "dagster-webserver" in command:
        return "webserver"
    if "dagster._daemon" in command or "dagster-daemon" in command:
        return "daemon"
    if "execute_run" in command or "execute_step" in command:
        return "runs"
    if "code-server" in command or "api grpc" in command:
        return "code_server"
    if "dagster" in command and " dev " in f"{command} ":
        return "dev_parent"
    return None


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a live process (None once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RoleSampler(threading.Thread):
    """Samples the RSS of each role of a `dagster dev` tree every `interval` s and keeps the
    peaks: summed per role, the largest single run (its process and its workers), the total,
    and which roles made up the total at its peak.

    A run is a process whose command line names `execute_run`/`execute_step`, or a
    multiprocessing child of the code server (how the gRPC server starts a run); every process
    below a run (its decode workers) counts as that run's.

    The sampler runs beside the pipeline it measures, so it must stay cheap: RSS and CPU come
    from `statm`/`stat` (~1 ms for a 20-process tree) every `interval` s; PSS (the kernel walks
    every mapping, ~5 ms a process) only when the RSS total reaches a new peak."""

    ROLES = ("webserver", "daemon", "code_server", "runs", "dev_parent", "other")

    def __init__(self, root_pid: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.interval = root_pid, interval
        self.peak = dict.fromkeys(self.ROLES, 0)
        self.peak_single_run = self.peak_total = self.peak_total_pss = 0
        self.peak_single_process, self.peak_single_command = 0, ""
        self.max_processes = self.max_concurrent_runs = self.max_run_processes = 0
        self.breakdown_at_peak: dict[str, dict[str, float]] = {}
        self.commands: dict[str, str] = {}  # role -> an example command line
        self.run_commands: set[str] = set()  # what the runs role held (to check it, ≤ 20)
        self._stop_event = threading.Event()
        # pid -> (role, CPU seconds when first seen, when last seen): where the CPU went
        self._cpu: dict[int, tuple[str, float, float]] = {}

    def snapshot(self) -> dict[str, Any]:
        """RSS and processes per role now (also folded into the peaks)."""
        table = proc_table()
        roles: dict[int, str] = {}
        run_of: dict[int, int] = {}  # process of the runs role -> its run's top process
        by_role: dict[str, list[int]] = {r: [0, 0] for r in self.ROLES}
        per_run: Counter[int] = Counter()
        tree = tree_pids(self.root_pid, table)
        for pid in tree:  # parents come before their children
            parent = table.get(pid, (0, ""))[0]
            command = cmdline(pid, 400)
            own = role_of(command)
            if own is None and "spawn_main" in command and roles.get(parent) == "code_server":
                own = "runs"  # the gRPC server starts each run as a multiprocessing child
            role = own or roles.get(parent, "other")
            roles[pid] = role
            if role == "runs":
                run_of[pid] = pid if own == "runs" else run_of.get(parent, pid)
            self.commands.setdefault(role, command[:160])
            size = rss_bytes(pid)
            by_role[role][0] += 1
            by_role[role][1] += size
            if role == "runs":
                per_run[run_of[pid]] += size
                if len(self.run_commands) < 20:
                    self.run_commands.add(command[:120])
            if size > self.peak_single_process:
                self.peak_single_process, self.peak_single_command = size, command[:160]
            used = process_cpu_seconds(pid)
            if used is not None:
                first = self._cpu.get(pid, (role, used, used))[1]
                self._cpu[pid] = (role, first, used)
        for role, (_, size) in by_role.items():
            self.peak[role] = max(self.peak[role], size)
        now = {role: {"processes": n, "rss_mib": mib(size)}
               for role, (n, size) in by_role.items() if n}
        total = sum(size for _, size in by_role.values())
        if total > self.peak_total:
            self.peak_total, self.breakdown_at_peak = total, now
            self.peak_total_pss = max(self.peak_total_pss, sum(map(pss_bytes, tree)))
        self.peak_single_run = max([self.peak_single_run, *per_run.values()])
        self.max_processes = max(self.max_processes, len(tree))
        self.max_run_processes = max(self.max_run_processes, by_role["runs"][0])
        self.max_concurrent_runs = max(self.max_concurrent_runs,
                                       sum(1 for p, r in run_of.items() if p == r))
        return now

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.snapshot()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def cpu_seconds_by_role(self) -> dict[str, float]:
        """CPU seconds each role used while sampled (a process's use before it was first
        seen, and after its last sample, is not counted)."""
        spent: Counter[str] = Counter()
        for role, first, last in self._cpu.values():
            spent[role] += last - first
        return {role: round(seconds, 1) for role, seconds in sorted(spent.items())}

    def peaks(self) -> dict[str, Any]:
        return {"cpu_seconds_by_role": self.cpu_seconds_by_role(),
                "rss_mib_by_role": {r: mib(v) for r, v in self.peak.items() if v},
                "rss_mib_largest_run": mib(self.peak_single_run),
                "rss_mib_total": mib(self.peak_total), "pss_mib_total": mib(self.peak_total_pss),
                "rss_mib_largest_process": mib(self.peak_single_process),
                "largest_process_command": self.peak_single_command,
                "breakdown_at_total_peak": self.breakdown_at_peak,
                "max_processes": self.max_processes,
                "max_run_processes": self.max_run_processes,
                "max_concurrent_runs": self.max_concurrent_runs,
                "commands": self.commands, "run_commands": sorted(self.run_commands)}


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds of a live process tree: each process's own time plus that of the children it
    has reaped (those have left the tree), so nothing counts twice. Take the difference of two
    readings for a phase."""
    total = 0
    for pid in tree_pids(root_pid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def cpu_busy_since(start: tuple[float, float]) -> float:
    busy, total = cpu_times()
    return round((busy - start[0]) / max(1.0, total - start[1]), 3)


def mib(value: float) -> float:
    return round(value / 1024**2, 1)


def save_and_report(data: dict[str, Any], out_dir: Path, name: str,
                    report: Callable[[dict[str, Any]], str]) -> Path:
    """Write the run's JSON under `out_dir`, print the report (when anything was measured)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.json"
    out.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    if "bare" in data or "pipeline" in data:
        print()
        print(report(data))
    print(f"\nJSON: {out}")
    return out
