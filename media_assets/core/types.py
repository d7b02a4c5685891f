"""The typed values that flow through a batch run: one file's entry in its batch manifest.

A manifest is JSON in the store (read by every step, the CLI, erasure, archive tools), so an
entry keeps its plain-record form there; code builds and reads it through `FileEntry`, one
shape for every way a file can end (stored, duplicate, quarantined, missing, unreadable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

Status = Literal["ok", "quarantined", "missing", "unreadable"]
MediaKind = Literal["image", "video", "audio", "sidecar"]

# Outcomes whose bytes are in the store or in quarantine: only those files leave the inbox.
SAFE_STATUSES: tuple[str, ...] = ("ok", "quarantined")


@dataclass(frozen=True)
class FileEntry:
    """What became of one source file of a batch."""

    source_name: str  # sanitised, unique within the batch (never a store key)
    status: Status
    content_id: str | None = None  # SHA-256 of the bytes; None when they could not be read
    kind: str | None = None
    type: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    duplicate: bool = False
    original_key: str | None = None
    quarantine_key: str | None = None
    reason: str | None = None
    detail: str | None = None
    arrived_at: str | None = None  # ISO time the file was last modified in the inbox
    intake_ms: float | None = None
    # The first attempt's failure when the file ran again alone (its worker crashed, ran out
    # of memory, or timed out starved of CPU); `status`/`reason` are the second attempt's.
    retried: str | None = None

    @property
    def stored(self) -> bool:
        return self.status == "ok"

    def to_record(self) -> dict[str, Any]:
        """The manifest's JSON form."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> FileEntry:
        """An entry read from a manifest (keys it does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def with_(self, **changes: Any) -> FileEntry:
        return replace(self, **changes)
