"""The daily archive on each backend (local folders and S3): a day is written with its
manifest as the commit point, rewritten when late rows arrive, verified from the store, and
its superseded files collected after the grace period."""

import hashlib
import io
from datetime import UTC, date, datetime, timedelta

import polars as pl

from media_assets.records.archive import (
    build_day,
    collect_due,
    collect_later,
    day_prefix,
    read_day,
    read_manifest,
    rows_of_day,
    verify_stored_day,
    write_day,
)
from media_assets.records.catalog import fragment_bytes

DAY = date(2026, 11, 27)


def arrivals(count: int) -> pl.DataFrame:
    rows = [{"content_id": hashlib.sha256(str(i).encode()).hexdigest(),
             "source_name": f"f{i}.jpg", "batch_key": f"20261127T0{i % 2}0000Z-0001",
             "cataloged_at": datetime(2026, 11, 27, 12, tzinfo=UTC), "status": "ok",
             "media_kind": "image", "bytes": 1000 + i, "derivatives": []}
            for i in range(count)]
    return pl.read_parquet(io.BytesIO(fragment_bytes(rows)))


def archive(store, rows: pl.DataFrame) -> dict:
    files, manifest = build_day(rows_of_day(rows, DAY), DAY)
    return write_day(store, DAY, files, manifest, {"run_id": "r1"})


def test_a_day_is_archived_rewritten_verified_and_collected(store):
    archive(store, arrivals(3))
    first = read_manifest(store, DAY)
    result = archive(store, arrivals(5))  # late rows
    assert read_day(store, DAY).height == 5
    assert verify_stored_day(store, DAY) == []

    superseded = [f["path"] for f in first["files"]]
    collect_later(store, DAY, superseded, now=datetime(2026, 11, 28, tzinfo=UTC))
    assert collect_due(store, datetime(2026, 11, 28, tzinfo=UTC), timedelta(hours=1)) == []
    assert collect_due(store, datetime(2026, 11, 28, 2, tzinfo=UTC), timedelta(hours=1))
    assert not any(store.exists(day_prefix(DAY) + path) for path in superseded)
    assert read_day(store, DAY).height == 5 and result["changed"] is True


def test_a_damaged_data_file_is_named_by_the_verification(store):
    archive(store, arrivals(3))
    [entry] = read_manifest(store, DAY)["files"]
    store.put_bytes(day_prefix(DAY) + entry["path"], b"not parquet")
    problems = verify_stored_day(store, DAY)
    assert problems and entry["path"] in problems[0]
