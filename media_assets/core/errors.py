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


TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.EIO, errno.EBUSY, errno.ETIMEDOUT}


@contextlib.contextmanager
def classify_os_errors() -> Iterator[None]:
    """Turn OSErrors that a retry may fix into TransientError; let the rest propagate."""
    try:
        yield
    except OSError as exc:
        if exc.errno in TRANSIENT_ERRNOS:
            raise TransientError(str(exc)) from exc
        raise
