"""Machine-wide core slots: however many runs decode on one machine, at most N files are being
worked on at once. A slot is an exclusive `flock` on one of N files in a shared local folder;
the kernel drops it when its holder ends, however it ends (`kill -9`, OOM killer, a time
limit), so a dead worker never keeps a core."""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
import time
from pathlib import Path

SLOTS_DIR_ENV = "MEDIA_ASSETS_CORE_SLOTS_DIR"
POLL_SECONDS = 0.01  # how often a waiting worker tries the slots again (jittered)


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity: taskset, cpusets), not the
    machine's total. A container's CPU quota is not visible here: size `limits.workers`."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_slots_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"media_assets-cores-{os.getuid()}"


def slots_dir() -> Path:
    """The slot folder, created if missing: `MEDIA_ASSETS_CORE_SLOTS_DIR`, else one folder per
    user under the system temp dir (every process of a user on this machine shares it). It
    must be on a local filesystem: flock on a network share is not per machine."""
    configured = os.environ.get(SLOTS_DIR_ENV, "").strip()
    directory = Path(configured) if configured else default_slots_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not configured and directory.stat().st_uid != os.getuid():
        # someone else's folder at our name could hold every slot forever
        raise PermissionError(f"{directory} belongs to another user; set {SLOTS_DIR_ENV}")
    return directory


class CoreSlots:
    """N slot files in `directory`; a worker holds one while it works on a file.

    flock has no "any of N" wait, so waiting is polling with jitter (a freed slot is taken
    within ~10 ms; a waiter costs a few syscalls per poll). Without more, a worker that just
    finished a file would take its slot straight back for its next one, and a busy run would
    keep the machine's cores until it has no files left. So waiters hold a shared lock on a
    `waiting` file, and while anyone waits a worker joins them and lets those already waiting
    try first: the cores pass between runs file by file."""

    def __init__(self, directory: Path, count: int) -> None:
        self.directory = directory
        self.count = max(1, count)
        self._fds: list[int] = []
        self._waiting = -1

    def _open(self, name: str) -> int:
        # close-on-exec: a lock inherited by a decoder's child would outlive the worker
        return os.open(self.directory / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _files(self) -> list[int]:
        if not self._fds:  # opened once per worker; a lock is per open file, not per process
            self._waiting = self._open("waiting")
            self._fds = [self._open(f"slot-{i}") for i in range(self.count)]
        return self._fds

    def try_acquire(self) -> int | None:
        """The fd of a slot now held by this process, or None when all are taken."""
        fds = self._files()
        start = random.randrange(len(fds))  # spread waiters over the slots
        for fd in fds[start:] + fds[:start]:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            return fd
        return None

    def _anyone_waiting(self) -> bool:
        self._files()
        try:
            fcntl.flock(self._waiting, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # a waiter holds it shared
        fcntl.flock(self._waiting, fcntl.LOCK_UN)
        return False

    def acquire(self, wait_seconds: float) -> int | None:
        """The fd of a slot now held by this process, waiting up to `wait_seconds` for one;
        None if none came free. Hand it back with `release`."""
        if not self._anyone_waiting():
            fd = self.try_acquire()
            if fd is not None:
                return fd
        deadline = time.monotonic() + wait_seconds
        fcntl.flock(self._waiting, fcntl.LOCK_SH)
        try:
            time.sleep(2 * POLL_SECONDS)  # those already waiting go first
            while True:
                fd = self.try_acquire()
                if fd is not None or time.monotonic() >= deadline:
                    return fd
                time.sleep(POLL_SECONDS * random.uniform(0.5, 1.5))
        finally:
            fcntl.flock(self._waiting, fcntl.LOCK_UN)

    @staticmethod
    def release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
