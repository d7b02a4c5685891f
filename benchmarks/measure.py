"""Measurements shared by the benchmarks: hashing, /proc memory of a process and of a process
tree, CPU time."""

from __future__ import annotations

import hashlib
import json
import os
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


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


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
