"""The audit log: every quarantine, tier move, purge, release, erasure, rollout step, alert
and operator switch, as JSON lines under `audit/date=YYYY-MM-DD/`, chained so that an edited,
removed, reordered or truncated record is caught.

- Each record carries `prev`, the hash of the record before it (the line above, the last line
  of the object before, or for a day's first record the last record of the day before), and
  `hash`, the SHA-256 of its own canonical JSON (every field but `hash`).
- A day's objects are numbered (`000000001.jsonl`, …) and written put-if-absent: two writers
  can never take the same number, so appends are serialised without a lock (on local disk
  and on S3 alike); the loser re-reads the day's head and takes the next number. The day is
  the UTC day of the append.
- A day's head (its last object number and last hash) is anchored outside the log, in that
  day's archive manifest (`records/archive.py`), so a truncated tail or a consistent rewrite
  of a whole day is caught too, not only a broken link.

Objects written before the chain existed (named `<time>-<uuid>.jsonl`) are read as before and
reported by `verify_chain` as unchained. Pure, no Dagster."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

AUDIT_PREFIX = "audit/"
FIELDS = ("time", "action", "content_id", "from", "to", "reason", "run_id", "actor")
GENESIS = "0" * 64  # `prev` of the very first record
OBJECT_NAME = re.compile(r"^(\d{9})\.jsonl$")
LOOK_BACK_DAYS = 31  # for a day's first record, days searched for the previous head first
MAX_RACES = 100  # appends lost to other writers before giving up (each loser re-reads)


def audit_record(action: str, content_id: str, *, source: str | None = None,
                 target: str | None = None, reason: str | None = None,
                 run_id: str | None = None, actor: str = "media_assets",
                 now: datetime | None = None) -> dict[str, Any]:
    return {"time": (now or datetime.now(UTC)).isoformat(), "action": action,
            "content_id": content_id, "from": source, "to": target, "reason": reason,
            "run_id": run_id, "actor": actor}


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of a record's canonical JSON, `prev` included and `hash` left out."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def day_prefix(day: date) -> str:
    return f"{AUDIT_PREFIX}date={day.isoformat()}/"


def object_key(day: date, number: int) -> str:
    return f"{day_prefix(day)}{number:09d}.jsonl"


@dataclass(frozen=True)
class Head:
    """Where a day's chain ends: its last object's number and its last record's hash."""

    day: date
    objects: int
    hash: str


_heads: dict[str, Head] = {}  # per store location: this process's last append (a hint only)
_heads_lock = threading.Lock()


def append(store: Any, records: Iterable[dict[str, Any]], now: datetime | None = None
           ) -> str | None:
    """Append records as the next numbered object of today's chain; returns its key (None
    when there was nothing)."""
    records = [{f: r.get(f) for f in FIELDS} for r in records]
    if not records:
        return None
    day = (now or datetime.now(UTC)).astimezone(UTC).date()
    head = _cached_head(store, day) or day_head(store, day)
    for _ in range(MAX_RACES):
        prev, lines = head.hash, []
        for record in records:
            chained = {**record, "prev": prev}
            prev = chained["hash"] = record_hash(chained)
            lines.append(json.dumps(chained, sort_keys=True) + "\n")
        key = object_key(day, head.objects + 1)
        if store.put_bytes_if_absent(key, "".join(lines).encode()):
            with _heads_lock:
                _heads[store.describe(AUDIT_PREFIX)] = Head(day, head.objects + 1, prev)
            return key
        head = day_head(store, day)  # another writer took the number: read the head again
    raise RuntimeError(f"audit: lost {MAX_RACES} appends in a row to other writers on {day}")


def _cached_head(store: Any, day: date) -> Head | None:
    """This process's last append to today's chain, if its object is still there: a later
    one by another writer makes the next put fail and the head be read again."""
    with _heads_lock:
        head = _heads.get(store.describe(AUDIT_PREFIX))
    if head is None or head.day != day or not store.exists(object_key(day, head.objects)):
        return None
    return head


def _numbered(keys: Iterable[str]) -> dict[int, str]:
    found = {}
    for key in keys:
        match = OBJECT_NAME.match(key.rsplit("/", 1)[-1])
        if match:
            found[int(match.group(1))] = key
    return found


def _last_hash(store: Any, key: str) -> str:
    lines = [line for line in store.read_bytes(key).decode().splitlines() if line]
    return json.loads(lines[-1])["hash"]


def _day_end(store: Any, day: date) -> Head | None:
    """Where `day`'s own objects end (None: the day has none)."""
    numbered = _numbered(store.list(day_prefix(day)))
    if not numbered:
        return None
    last = max(numbered)
    return Head(day, last, _last_hash(store, numbered[last]))


def day_head(store: Any, day: date) -> Head:
    """The head of `day`'s chain as the store has it; for a day without objects yet, the
    previous day's last hash with object count 0 (the first record links to it)."""
    own = _day_end(store, day)
    if own:
        return own
    for back in range(1, LOOK_BACK_DAYS + 1):
        earlier = _day_end(store, day - timedelta(days=back))
        if earlier:
            return Head(day, 0, earlier.hash)
    days = _chained_days(store, before=day)  # a long quiet spell: search everything once
    if days:
        last_day, objects = max(days.items())
        return Head(day, 0, _last_hash(store, objects[max(objects)]))
    return Head(day, 0, GENESIS)


def _chained_days(store: Any, before: date | None = None) -> dict[date, dict[int, str]]:
    days: dict[date, dict[int, str]] = {}
    for key in store.list(AUDIT_PREFIX):
        match = re.match(r"^audit/date=(\d{4}-\d{2}-\d{2})/(\d{9})\.jsonl$", key)
        if match:
            day = date.fromisoformat(match.group(1))
            if before is None or day < before:
                days.setdefault(day, {})[int(match.group(2))] = key
    return days


def anchor(store: Any, day: date) -> dict[str, Any] | None:
    """What a day's archive manifest records of its audit chain (None: nothing that day)."""
    last = _day_end(store, day)
    return {"objects": last.objects, "hash": last.hash} if last else None


@dataclass
class ChainReport:
    records: int = 0
    days: int = 0
    problems: list[str] = field(default_factory=list)
    unchained_objects: int = 0  # written before the chain existed

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(store: Any, anchors: Mapping[date, Mapping[str, Any]] | None = None
                 ) -> ChainReport:
    """Walk every day's chain in order: each record's hash, each link, each day's object
    numbers without gaps, each day's first record linked to the day before, and each anchored
    head present with its hash. Problems name the object and line."""
    report = ChainReport()
    report.unchained_objects = sum(
        1 for key in store.list(AUDIT_PREFIX)
        if key.endswith(".jsonl") and not OBJECT_NAME.match(key.rsplit("/", 1)[-1]))
    prev = GENESIS
    days = _chained_days(store)
    for day in sorted(days):
        report.days += 1
        objects = days[day]
        hashes_by_object: dict[int, str] = {}
        for number in range(1, max(objects) + 1):
            key = objects.get(number)
            if key is None:
                report.problems.append(f"{object_key(day, number)}: missing (removed)")
                continue
            lines = [line for line in store.read_bytes(key).decode().splitlines() if line]
            for line_number, line in enumerate(lines, 1):
                report.records += 1
                where = f"{key} line {line_number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    report.problems.append(f"{where}: not JSON (edited)")
                    continue
                if record.get("hash") != record_hash(record):
                    report.problems.append(f"{where}: its hash does not match its content "
                                           f"(edited: {record.get('action')} "
                                           f"{record.get('content_id')})")
                elif record.get("prev") != prev:
                    report.problems.append(
                        f"{where}: does not follow the record before it (a record before it "
                        "was removed, or records were reordered)")
                prev = record.get("hash", "")
            hashes_by_object[number] = prev
        held = (anchors or {}).get(day)
        if held is not None:
            number, expected = int(held["objects"]), held["hash"]
            if number not in hashes_by_object:
                report.problems.append(
                    f"audit day {day}: the archive anchored object {number}, the log ends at "
                    f"{max(objects)} (truncated)")
            elif hashes_by_object[number] != expected:
                report.problems.append(
                    f"audit day {day}: object {number} ends with hash "
                    f"{hashes_by_object[number][:12]}…, the archive anchored {expected[:12]}… "
                    "(rewritten)")
    for day, held in sorted((anchors or {}).items()):
        if day not in days and int(held.get("objects", 0)) > 0:
            report.problems.append(f"audit day {day}: anchored by the archive "
                                   f"({held['objects']} objects) but absent (removed)")
    return report


def read_audit(store: Any, day: str | None = None) -> pl.DataFrame:
    """Every audit record (of one day, if given), oldest first."""
    prefix = f"{AUDIT_PREFIX}date={day}/" if day else AUDIT_PREFIX
    rows = [{f: record.get(f) for f in FIELDS}
            for key in store.list(prefix) if key.endswith(".jsonl")
            for line in store.read_bytes(key).decode().splitlines() if line
            for record in [json.loads(line)]]
    schema = {f: pl.String for f in FIELDS}
    return pl.DataFrame(rows, schema=schema).sort("time") if rows else pl.DataFrame(
        schema=schema)
