"""Narrow catalog reads: a lookup reads only the index row groups that can match and the
fragments written since, and finds what a full read finds; a column projection keeps only
what a scan needs."""

import hashlib
from datetime import UTC, datetime

from media_assets.records.catalog import (
    STALE_COLUMNS,
    compact,
    find,
    fragment_bytes,
    fragment_key,
    lookup,
    read_catalog,
    related_rows,
)
from media_assets.storage import LocalObjectStore

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)


def write_batch(store, batch: str, names: list[str], **extra) -> list[str]:
    rows = [{"content_id": hashlib.sha256(f"{batch}/{n}".encode()).hexdigest(),
             "source_name": n, "batch_key": batch, "cataloged_at": NOW, "status": "ok",
             "media_kind": "image", "bytes": 10, "derivatives": [],
             "original_key": f"originals/{n}", **extra} for n in names]
    store.put_bytes(fragment_key(batch, NOW, "run00000"), fragment_bytes(rows))
    return [r["content_id"] for r in rows]


def test_a_lookup_finds_in_the_index_and_in_fresh_fragments_what_a_full_read_finds(tmp_path):
    store = LocalObjectStore(tmp_path)
    indexed = write_batch(store, "20261127T010000Z-0001", [f"a/{i}.jpg" for i in range(50)])
    compact(store, NOW)
    fresh = write_batch(store, "20261127T020000Z-0002", ["b/late.jpg"])
    for query in (indexed[7], indexed[7][:8], "a/3.jpg", "3.jpg", fresh[0], "late.jpg", "none"):
        assert find(store, query).to_dicts() == lookup(read_catalog(store), query).to_dicts()


def test_linked_rows_are_found_by_live_photo_id(tmp_path):
    store = LocalObjectStore(tmp_path)
    [still] = write_batch(store, "20261127T010000Z-0001", ["IMG_1.HEIC"], live_photo_id="L1")
    [movie] = write_batch(store, "20261127T020000Z-0002", ["IMG_1.MOV"], live_photo_id="L1")
    write_batch(store, "20261127T030000Z-0003", ["other.jpg"])
    row = find(store, still).row(0, named=True)
    assert set(related_rows(store, row)["content_id"]) == {still, movie}


def test_a_projection_keeps_only_the_columns_a_scan_needs(tmp_path):
    store = LocalObjectStore(tmp_path)
    write_batch(store, "20261127T010000Z-0001", ["x.jpg"])
    narrow = read_catalog(store, columns=STALE_COLUMNS)
    assert "metadata_json" not in narrow.columns and "tier" in narrow.columns
    assert set(STALE_COLUMNS) <= set(narrow.columns)
    assert narrow.height == read_catalog(store).height == 1
    assert narrow["tier"].to_list() == ["hot"]
