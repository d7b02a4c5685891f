"""Error classes that decide a file's fate: quarantine (deterministic) or retry (transient)."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator


class MediaError(Exception):
    """Base of every error the media core raises on purpose."""


class Rejected(MediaError):
    """The file itself is bad: retrying cannot help, so it is quarantined with `reason`.

    Reasons are short stable codes an operator can filter on (``corrupt``, ``truncated``,
    ``empty``, ``unsupported_type``, ``too_large``, ``too_many_pixels``, ``timeout``,
    ``worker_crashed``, ``fixity_mismatch``).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TransientError(MediaError):
    """Storage or environment trouble that a bounded retry may fix."""


class MachineFault(TransientError):
    """The machine, not the file: its disk is full or read-only, or it is out of file
    handles. Never a file's quarantine reason: the step fails, and the batch runs again
    once the cause has cleared (the disk guard, the healer's backoff)."""


TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.EIO, errno.EBUSY, errno.ETIMEDOUT}
MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EMFILE, errno.ENFILE}


def machine_fault(exc: BaseException) -> MachineFault | None:
    """The MachineFault an OSError stands for, if it is one (e.g. ENOSPC)."""
    if isinstance(exc, OSError) and exc.errno in MACHINE_ERRNOS:
        fault = MachineFault(f"{errno.errorcode[exc.errno]}: {exc}")
        fault.__cause__ = exc
        return fault
    return None


@contextlib.contextmanager
def classify_os_errors() -> Iterator[None]:
    """Turn OSErrors that a retry may fix, or that are the machine's (a full disk), into
    TransientError; let the rest propagate."""
    try:
        yield
    except OSError as exc:
        if (fault := machine_fault(exc)) is not None:
            raise fault from exc
        if exc.errno in TRANSIENT_ERRNOS:
            raise TransientError(str(exc)) from exc
        raise
