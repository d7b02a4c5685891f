"""Faults as an operator's machine meets them, for tests under the real daemon: uploads that
land by rename, decode workers found and killed, run workers found by their children."""

import io
import os
import time
from pathlib import Path

from media_assets.samples import synth_photo


def photo_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    synth_photo((2400, 1800), seed=seed).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def drop(inbox: Path, names_and_bytes: dict[str, bytes]) -> None:
    """Written under dot names, then renamed in (as an upload finishes)."""
    inbox.mkdir(parents=True, exist_ok=True)
    for name, data in names_and_bytes.items():
        (inbox / f".{name}.part").write_bytes(data)
    for name in names_and_bytes:
        os.replace(inbox / f".{name}.part", inbox / name)


def decode_workers() -> list[int]:
    """Processes spawned by a process that was itself spawned (a run's decode workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            mine = (stat.parent / "cmdline").read_bytes()
            parent = Path(f"/proc/{ppid}/cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if b"multiprocessing-fork" in mine and b"multiprocessing-fork" in parent:
            found.append(int(stat.parent.name))
    return found


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return -1
    return int(fields[11]) + int(fields[12])


def busy(workers: list[int]) -> list[int]:
    """The workers using CPU right now (decoding, not idle or starting)."""
    before = {pid: cpu_ticks(pid) for pid in workers}
    time.sleep(0.05)
    return [pid for pid in workers if cpu_ticks(pid) > before[pid] >= 0]


def run_workers() -> list[int]:
    """The processes whose children are decode workers: the batch runs' worker processes."""
    parents = set()
    for pid in decode_workers():
        try:
            parents.add(int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(parents)
