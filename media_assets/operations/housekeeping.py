"""Housekeeping: remove the temp files that a killed writer leaves in the store.

Every write goes to a hidden temp file beside its target (`.<name>.tmp-XXXX`) or into a
scratch folder under the store's `.staging/`, and is renamed into place when complete. A
process killed mid-write (kill -9, the OOM killer, a power cut) leaves those behind: nothing
reads them (listings skip them), but they take space, and a staged original is a full copy.
A leftover is removed only once nothing has touched it for `max_age_seconds`, which the
policy keeps longer than any writer's time limit, so a live writer never loses its file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

TEMP_MARK = ".tmp-"  # in every temp name the store's own writers choose
STAGING = ".staging"  # the store's scratch folder (on its filesystem: staged files link in)


def is_temp_name(name: str) -> bool:
    """A hidden temp file beside its target: `.<name>.tmp-XXXX` or `.<name>.tmp`."""
    return name.startswith(".") and (TEMP_MARK in name or name.endswith(".tmp"))


@dataclass(frozen=True)
class Leftover:
    path: str  # relative to the store root, '/'-separated
    files: int
    bytes: int
    idle_seconds: float  # since anything in it was last written


@dataclass
class Sweep:
    removed: list[Leftover] = field(default_factory=list)
    kept: list[Leftover] = field(default_factory=list)  # too recent: a writer may be alive

    @property
    def removed_bytes(self) -> int:
        return sum(item.bytes for item in self.removed)


def remove_stale_temp_files(root: str | Path, *, now: datetime, max_age_seconds: float,
                            dry_run: bool = False) -> Sweep:
    """Remove temp files under `root` idle for `max_age_seconds` or more at `now`: hidden
    temp names anywhere (every tier), and each scratch folder or file in `.staging/` whose
    newest content is that old. `dry_run` only says what would go."""
    root = Path(root)
    sweep = Sweep()
    if not root.is_dir():
        return sweep
    for path in _leftovers(root):
        measured = _measure(path)
        if measured is None:  # renamed into place or removed since listed
            continue
        files, size, newest = measured
        item = Leftover(path.relative_to(root).as_posix(), files, size,
                        round(now.timestamp() - newest, 3))
        if item.idle_seconds < max_age_seconds:
            sweep.kept.append(item)
            continue
        if not dry_run:
            _remove(path)
        sweep.removed.append(item)
    return sweep


def _leftovers(root: Path) -> list[Path]:
    """Every entry of `.staging/`, then every temp-named file elsewhere, sorted."""
    found = []
    staging = root / STAGING
    if staging.is_dir():
        found += sorted(staging.iterdir())
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d != STAGING]
        dirnames.sort()
        found += [Path(dirpath, name) for name in sorted(filenames) if is_temp_name(name)]
    return found


def _measure(path: Path) -> tuple[int, int, float] | None:
    """(files, bytes, newest mtime) of a file or of a folder and everything in it."""
    try:
        stat = path.lstat()
    except FileNotFoundError:
        return None
    if not path.is_dir() or path.is_symlink():
        return 1, stat.st_size, stat.st_mtime
    files, size, newest = 0, 0, stat.st_mtime
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            with contextlib.suppress(FileNotFoundError):
                entry = Path(dirpath, name).lstat()
                newest = max(newest, entry.st_mtime)
                if name in filenames:
                    files += 1
                    size += entry.st_size
    return files, size, newest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
