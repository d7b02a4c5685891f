"""Local-folder implementations of the storage contract (the embedded default)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from stat import S_ISLNK, S_ISREG
from typing import BinaryIO

from media_assets.codec.untrusted import describe_mode, open_untrusted
from media_assets.core.errors import classify_os_errors
from media_assets.core.store import IGNORED_SUFFIXES, InboxEntry, is_ignored_name
from media_assets.operations.housekeeping import STAGING, TEMP_MARK

# Names a media file would have: a folder or special file named so is reported, not taken.
MEDIA_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".heic",
                  ".heif", ".avif", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mp3",
                  ".m4a", ".ogg", ".opus", ".flac", ".wav", ".aac", ".xmp")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _default_file_mode() -> int:
    """What `open()` would give a new file here (0644 under the usual umask 022): every
    object gets it, whichever way it was written (mkstemp alone would give 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _default_file_mode()


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write `data` to `target` so readers see either the old file or the whole new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}{TEMP_MARK}")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class LocalObjectStore:
    """Objects as files under `root`; temp file + fsync + rename for every write.

    Storage tiers: a `cold` object lives under `root/.cold/` with the same key (S3 would
    change its storage class instead); every read finds it wherever it is."""

    TIERS = ("hot", "cold")
    links_staged_files = True  # staged files are hard-linked in, never copied

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.cold_root = self.root / ".cold"

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid key {key!r}")
        return self.root / key

    def _cold(self, key: str) -> Path:
        return self.cold_root / self._path(key).relative_to(self.root)

    def _find(self, key: str) -> Path:
        """Where the object is: its hot path, else its cold path (else the hot path)."""
        hot = self._path(key)
        if hot.is_file():
            return hot
        cold = self._cold(key)
        return cold if cold.is_file() else hot

    def tier(self, key: str) -> str | None:
        if self._path(key).is_file():
            return "hot"
        return "cold" if self._cold(key).is_file() else None

    def set_tier(self, key: str, tier: str) -> None:
        """Move an object to another tier (atomically; its key does not change)."""
        if tier not in self.TIERS:
            raise ValueError(f"unknown tier {tier!r}; tiers are {self.TIERS}")
        source = self._find(key)
        target = self._path(key) if tier == "hot" else self._cold(key)
        if source == target:
            return
        with classify_os_errors():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            fsync_dir(target.parent)

    def staging_dir(self) -> Path:
        """A scratch folder on the store's filesystem, so staged files move in by rename."""
        path = self.root / STAGING
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _staged_copy(self, source: Path, target: Path) -> Path:
        """A durable temp file beside `target` holding `source`'s bytes: a second link when
        `source` is already on the store's filesystem (a worker's output in staging, never
        written again), else a copy."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}{TEMP_MARK}{secrets.token_hex(6)}"
        if self.staging_dir() in source.parents:
            os.link(source, tmp)
        else:
            shutil.copyfile(source, tmp)
        try:
            os.chmod(tmp, FILE_MODE)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def put_file(self, key: str, source: Path) -> None:
        target = self._path(key)
        with classify_os_errors():
            tmp = self._staged_copy(source, target)
            try:
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)  # nothing half-written stays visible
                raise
            fsync_dir(target.parent)

    def free_bytes(self) -> int | None:
        """Free space where the store writes (None where it cannot run out, e.g. S3)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def put_file_if_absent(self, key: str, source: Path) -> bool:
        """Store `source` under `key` unless the key exists: atomic even across processes."""
        target = self._path(key)
        if target.exists():
            return False
        staged = self.staging_dir() in source.parents  # already durable on this filesystem
        with classify_os_errors():
            tmp = source if staged else self._staged_copy(source, target)
            if staged:
                os.chmod(tmp, FILE_MODE)  # staged by mkstemp (0600)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(tmp, target)  # fails if another writer got there first
            except FileExistsError:
                return False
            finally:
                if not staged:
                    os.unlink(tmp)
            fsync_dir(target.parent)
            return True

    def put_bytes(self, key: str, data: bytes) -> None:
        with classify_os_errors():
            atomic_write_bytes(self._path(key), data)

    def put_bytes_if_absent(self, key: str, data: bytes) -> bool:
        if self.exists(key):
            return False
        with tempfile.TemporaryDirectory(dir=self.staging_dir()) as scratch:
            path = Path(scratch) / "blob"
            path.write_bytes(data)
            return self.put_file_if_absent(key, path)

    def open_read(self, key: str) -> BinaryIO:
        with classify_os_errors():
            return open(self._find(key), "rb")

    def read_bytes(self, key: str) -> bytes:
        with classify_os_errors():
            return self._find(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file() or self._cold(key).is_file()

    def size(self, key: str) -> int:
        return self._find(key).stat().st_size

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` (a folder-like prefix) in every tier, sorted, temp files
        skipped."""
        keys = set(self._walk(self.root, prefix)) | set(self._walk(self.cold_root, prefix))
        yield from sorted(keys)

    def _walk(self, top: Path, prefix: str) -> Iterator[str]:
        base = top / prefix.strip("/") if prefix.strip("/") else top
        if ".." in prefix.split("/") or not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if TEMP_MARK in name or name.startswith("."):
                    continue
                yield Path(dirpath, name).relative_to(top).as_posix()

    def delete(self, key: str) -> None:
        for path in (self._path(key), self._cold(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    @contextlib.contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self._find(key)
        if not path.is_file():
            raise FileNotFoundError(f"no object {key!r} in {self.root}")
        yield path

    def describe(self, key: str) -> str:
        return str(self._path(key))


class LocalInbox:
    """A folder that files are dropped into. Dotfiles and partial-download names are ignored.

    Only single-linked regular files inside the folder are ever listed or read. Symbolic
    links (to files or folders, inside or outside), hard links, FIFOs, sockets and devices
    are never opened or followed: `list_entries` reports them instead, as it reports folders
    named like media files (whose files are listed as files in a folder)."""

    IGNORED_SUFFIXES = IGNORED_SUFFIXES
    resume_after = ""  # a folder walk is cheap: every scan is the whole folder

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/") or "\x00" in name:
            raise ValueError(f"invalid inbox name {name!r}")
        return self.root / name

    def is_ignored(self, name: str) -> bool:
        return is_ignored_name(name)

    def scan(self, after: str = "", report: Callable[[str, str], None] | None = None
             ) -> Iterator[InboxEntry]:
        """The whole folder, whatever `after` (the sensor's per-tick file budget bounds it)."""
        return self.list_entries(report)

    def list_entries(self, report: Callable[[str, str], None] | None = None
                     ) -> Iterator[InboxEntry]:
        """The regular files waiting in the inbox (lstat only: nothing is opened or
        followed). `report(name, why)` hears about every entry that is not taken."""
        if not self.root.is_dir():
            return

        def skipped(name: str, why: str) -> None:
            if report is not None:
                report(name, why)

        for dirpath, dirnames, filenames in os.walk(self.root):  # never follows links
            kept = []
            for dirname in sorted(d for d in dirnames if not d.startswith(".")):
                name = Path(dirpath, dirname).relative_to(self.root).as_posix()
                if os.path.islink(Path(dirpath, dirname)):
                    skipped(name, "symbolic link to a folder (never followed)")
                    continue
                if dirname.lower().endswith(MEDIA_SUFFIXES):
                    skipped(name, "a folder named like a media file (its files are taken "
                                  "as files in a folder)")
                kept.append(dirname)
            dirnames[:] = kept
            for filename in sorted(filenames):
                path = Path(dirpath, filename)
                name = path.relative_to(self.root).as_posix()
                if self.is_ignored(name):
                    continue
                try:
                    stat = path.lstat()
                except FileNotFoundError:  # removed since listing
                    continue
                except OSError as exc:
                    if exc.errno == errno.ENAMETOOLONG:
                        skipped(name, "the path is too long to open")
                    continue
                if S_ISLNK(stat.st_mode):
                    skipped(name, "symbolic link (never followed)")
                elif not S_ISREG(stat.st_mode):  # FIFOs, sockets, devices: never opened
                    skipped(name, f"{describe_mode(stat.st_mode)}, not a file")
                elif stat.st_nlink > 1:
                    skipped(name, f"hard link ({stat.st_nlink} names for one file; copy it "
                                  "in instead)")
                else:
                    yield InboxEntry(name=name, size=stat.st_size, mtime=stat.st_mtime)

    def read_header(self, name: str, size: int) -> bytes:
        """The first `size` bytes of a regular file of its own: never through a link, and
        a non-blocking open, so a FIFO or link swapped in after the listing is refused."""
        with open_untrusted(self._path(name), self.root) as handle:
            return handle.read(size)

    def read_range(self, name: str, offset: int, size: int) -> bytes:
        """At most `size` bytes from `offset`; the same non-blocking open as read_header."""
        if offset < 0 or size < 0:
            raise ValueError(f"invalid range {offset}+{size}")
        with open_untrusted(self._path(name), self.root) as handle:
            return os.pread(handle.fileno(), size, offset)

    @contextlib.contextmanager
    def local_path(self, name: str) -> Iterator[Path]:
        yield self._path(name)

    def remove_if_unchanged(self, name: str, size: int, mtime: float) -> bool:
        """Remove the file only if it is still the one listed (same size and mtime).

        Returns False when the name now holds another file (replaced or rewritten) or the
        file cannot be removed: it stays. A file already gone counts as removed."""
        path = self._path(name)
        try:
            stat = path.lstat()
        except FileNotFoundError:
            return True
        if stat.st_size != size or stat.st_mtime != mtime or not S_ISREG(stat.st_mode):
            return False
        try:
            path.unlink(missing_ok=True)
        except OSError:  # e.g. a read-only folder: the file stays, the batch still completes
            return False
        return True

    def still_as_listed(self, name: str, size: int, mtime: float) -> bool:
        """The same regular file, same size and mtime, as when the sensor listed it."""
        try:
            stat = self._path(name).lstat()
        except OSError:
            return False
        return S_ISREG(stat.st_mode) and stat.st_size == size and stat.st_mtime == mtime

    def exists(self, name: str) -> bool:
        """Is there still an entry by this name (even one we may fail to read)?"""
        return os.path.lexists(self._path(name))
