"""Replays of quarantined files are bulk work: small batches, marked as bulk, per lane."""

from datetime import UTC, datetime

import pytest

from media_assets.core.policy import Batching
from media_assets.operations.replay import release
from media_assets.records.layout import quarantine_blob_key
from media_assets.records.manifest import BULK, UPLOAD, work_of
from media_assets.storage import LocalObjectStore

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "store")


def quarantined(store, count: int, jpeg_header: bytes) -> list[dict]:
    records = []
    for index in range(count):
        content_id = f"{index:064x}"
        store.put_bytes(quarantine_blob_key(content_id), jpeg_header)
        records.append({"content_id": content_id, "bytes_key": quarantine_blob_key(content_id),
                        "source_name": f"photo_{index}.jpg", "reason": "too_many_pixels"})
    return records


def test_a_large_release_becomes_many_small_bulk_batches(store, jpeg_header):
    batches = release(store, quarantined(store, 7, jpeg_header), Batching(bulk_max_files=3),
                      why="limit raised", actor="operator", run_id="run12345", now=NOW)
    assert [len(m["sources"]) for m in batches] == [3, 3, 1]
    assert {(m["lane"], m["work"]) for m in batches} == {("image", BULK)}


def test_a_replay_batch_also_keeps_within_its_lanes_byte_limit(store, jpeg_header):
    rules = Batching(bulk_max_files=32, max_bytes=2 * len(jpeg_header))
    batches = release(store, quarantined(store, 5, jpeg_header), rules, why="retry",
                      actor="operator", run_id=None, now=NOW)
    assert [len(m["sources"]) for m in batches] == [2, 2, 1]


def test_manifests_without_the_work_field_are_bulk_when_no_file_comes_from_the_inbox():
    assert work_of({"sources": [{"inbox": "a.jpg"}]}) == UPLOAD
    assert work_of({"sources": [{"content_id": "ab", "quarantine_key": "q"}]}) == BULK
    assert work_of({"work": BULK, "sources": [{"inbox": "a.jpg"}]}) == BULK
