"""The audit trail is tamper-evident: each record carries the hash of the one before it, a
day's objects are numbered and written put-if-absent (concurrent writers never collide), and
each day's head is anchored in its archive manifest. Verification names the object and line
of an edited, removed or reordered record, and a day truncated or rewritten since."""

import json
import subprocess
import sys
import threading
from datetime import UTC, date, datetime

import pytest

from media_assets.records.audit import (
    anchor,
    append,
    audit_record,
    day_prefix,
    read_audit,
    record_hash,
    verify_chain,
)
from media_assets.storage import LocalObjectStore

DAY1, DAY2 = datetime(2026, 12, 1, 10, tzinfo=UTC), datetime(2026, 12, 2, 9, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "store")


def quarantine(n: int, when: datetime) -> dict:
    return audit_record("quarantine", f"{n:064x}", source=f"file{n}.jpg", reason="corrupt",
                        now=when)


def write_history(store) -> list[str]:
    keys = [append(store, [quarantine(i, DAY1)], now=DAY1) for i in range(3)]
    keys.append(append(store, [quarantine(10, DAY2), quarantine(11, DAY2)], now=DAY2))
    return keys


def lines_of(store, key: str) -> list[dict]:
    return [json.loads(line) for line in store.read_bytes(key).decode().splitlines()]


def rewrite(store, key: str, records: list[dict]) -> None:
    """What someone with write access to the store would do (no put-if-absent for them)."""
    path = store.root / key
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def test_appends_are_numbered_per_day_and_chained_across_days(store):
    keys = write_history(store)
    assert [k.rsplit("/", 1)[1] for k in keys] == [
        "000000001.jsonl", "000000002.jsonl", "000000003.jsonl", "000000001.jsonl"]
    assert keys[0].startswith(day_prefix(date(2026, 12, 1)))
    first_of_day2 = lines_of(store, keys[3])[0]
    assert first_of_day2["prev"] == lines_of(store, keys[2])[-1]["hash"]
    report = verify_chain(store)
    assert report.ok and (report.records, report.days) == (5, 2)
    assert len(read_audit(store)) == 5  # readers see the records as before


def test_concurrent_writers_never_take_the_same_number(store, tmp_path):
    def writer(n: int) -> None:
        own = LocalObjectStore(tmp_path / "store")  # each its own handle, like each process
        for i in range(10):
            append(own, [quarantine(100 * n + i, DAY1)], now=DAY1)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify_chain(store)
    assert report.ok, report.problems
    assert report.records == 40
    assert len(list(store.list(day_prefix(DAY1.date())))) == 40


def test_an_edited_record_is_named(store):
    keys = write_history(store)
    records = lines_of(store, keys[1])
    records[0]["reason"] = "nothing happened here"
    rewrite(store, keys[1], records)
    [problem] = verify_chain(store).problems
    assert problem.startswith(f"{keys[1]} line 1: its hash does not match")


def test_a_removed_object_and_a_removed_line_are_caught(store):
    keys = write_history(store)
    (store.root / keys[1]).unlink()
    problems = verify_chain(store).problems
    assert f"{keys[1]}: missing (removed)" in problems
    assert any(p.startswith(f"{keys[2]} line 1: does not follow") for p in problems)

    rewrite(store, keys[3], lines_of(store, keys[3])[1:])  # day 2's first line dropped
    assert any(p.startswith(f"{keys[3]} line 1: does not follow")
               for p in verify_chain(store).problems)


def test_reordered_records_are_caught(store):
    keys = write_history(store)
    first, second = lines_of(store, keys[0]), lines_of(store, keys[1])
    rewrite(store, keys[0], second)
    rewrite(store, keys[1], first)
    problems = verify_chain(store).problems
    assert any(p.startswith(f"{keys[0]} line 1: does not follow") for p in problems)


def test_a_truncated_or_consistently_rewritten_day_is_caught_by_its_anchor(store):
    keys = write_history(store)
    anchors = {DAY1.date(): anchor(store, DAY1.date()), DAY2.date(): anchor(store, DAY2.date())}
    assert anchors[DAY2.date()] == {"objects": 1,
                                    "hash": lines_of(store, keys[3])[-1]["hash"]}
    assert verify_chain(store, anchors).ok

    # The last day's tail removed: no link is broken, the anchor says what is missing.
    (store.root / keys[3]).unlink()
    assert verify_chain(store).ok  # without the anchor this would go unseen
    problems = verify_chain(store, anchors).problems
    assert any("2026-12-02" in p and "absent (removed)" in p for p in problems)

    # Day 2 rewritten with freshly computed hashes: consistent, but not what was anchored.
    forged = quarantine(99, DAY2) | {"prev": lines_of(store, keys[2])[-1]["hash"]}
    forged["hash"] = record_hash(forged)
    (store.root / keys[3]).parent.mkdir(parents=True, exist_ok=True)
    rewrite(store, keys[3], [forged])
    assert verify_chain(store).ok
    [problem] = verify_chain(store, anchors).problems
    assert problem.startswith("audit day 2026-12-02: object 1 ends with hash") \
        and "(rewritten)" in problem


def test_the_cli_exits_truthfully(store):
    keys = write_history(store)

    def verify():
        return subprocess.run([sys.executable, "-m", "media_assets.audit", "verify", "--store",
                               str(store.root)], capture_output=True, text=True)

    clean = verify()
    assert clean.returncode == 0 and clean.stdout.startswith("ok 5 audit records over 2 days")
    records = lines_of(store, keys[0])
    records[0]["action"] = "release"
    rewrite(store, keys[0], records)
    tampered = verify()
    assert tampered.returncode == 1
    assert f"TAMPERED {keys[0]} line 1" in tampered.stderr
