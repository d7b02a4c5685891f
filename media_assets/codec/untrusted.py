"""Inbox names and inbox files are untrusted. Names are kept only as sanitised metadata (no
store key is ever derived from one; keys come from content ids); files are opened without
following a link, and only when they are single-linked regular files inside the inbox."""

from __future__ import annotations

import hashlib
import os
import stat
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MAX_NAME_CHARS = 512  # longer names are cut, with a hash of the whole name
_REPLACEMENT = "\ufffd"


def _name_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def _safe_char(char: str) -> str:
    """Control, format (bidi overrides, zero-width), separator and surrogate characters
    become U+FFFD: they can hide or reorder text in a terminal, a log or the UI."""
    category = unicodedata.category(char)
    if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or char == _REPLACEMENT:
        return _REPLACEMENT
    return char


def sanitize_name(raw: str) -> str:
    """The name people see for an inbox file: NFC-normalised, no control/format characters,
    no empty, '.' or '..' parts, no leading '/', at most MAX_NAME_CHARS characters (a longer
    one keeps its head, then '…', a hash of the whole name and its extension).
    Deterministic."""
    text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = unicodedata.normalize("NFC", text)
    text = "".join(_safe_char(c) for c in text)
    parts = [p.strip() for p in text.replace("\\", "/").split("/")]
    parts = [p for p in parts if p not in ("", ".", "..")]
    text = "/".join(parts) or f"unnamed-{_name_hash(raw)}"
    if len(text) > MAX_NAME_CHARS:
        suffix = PurePosixPath(text).suffix[:16]
        keep = MAX_NAME_CHARS - 11 - len(suffix)
        text = f"{text[:keep]}…{_name_hash(raw)}{suffix}"
    return text


def display_names(raw_names: Iterable[str]) -> dict[str, str]:
    """raw name -> sanitised name, unique within the given names: where two names sanitise
    to the same text (e.g. 'café' in NFC and NFD), every one that was changed by sanitising
    gets '~' and a hash of its raw name, so none of them stands for another."""
    names = sorted(set(raw_names))
    clean = {raw: sanitize_name(raw) for raw in names}
    groups: dict[str, list[str]] = defaultdict(list)
    for raw, text in clean.items():
        groups[text].append(raw)
    for text, members in groups.items():
        if len(members) > 1:
            for raw in members:
                if raw != text:
                    clean[raw] = f"{text}~{_name_hash(raw)}"
    return clean


class UnsafeEntry(OSError):
    """An inbox entry that is not a plain file of its own: a link, a special file, a path
    that leaves the inbox. It is never read."""


def open_untrusted(path: str | Path, root: str | Path | None = None) -> BinaryIO:
    """Open an inbox file for reading without ever following a symbolic link (O_NOFOLLOW)
    or blocking on a FIFO (O_NONBLOCK); refuse anything but a regular file with one link,
    and (with `root`) any file whose real location is not inside `root` — a folder of its
    path swapped for a link after the listing."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last part of the path is a symbolic link
            raise UnsafeEntry(exc.errno, "a symbolic link (never followed)") from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeEntry(f"not a regular file ({describe_mode(info.st_mode)})")
        if root is not None:
            if info.st_nlink != 1:
                raise UnsafeEntry(f"a hard link ({info.st_nlink} names for one file)")
            real = Path(os.readlink(f"/proc/self/fd/{fd}"))
            if not real.is_relative_to(Path(os.path.realpath(root))):
                raise UnsafeEntry("its real location is outside the inbox")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def describe_mode(mode: int) -> str:
    """What kind of directory entry a stat mode describes, in words."""
    for test, words in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISFIFO, "FIFO"),
                        (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                        (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "directory"),
                        (stat.S_ISREG, "regular file")):
        if test(mode):
            return words
    return "special file"
