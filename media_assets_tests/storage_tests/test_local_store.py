"""The storage contract on local folders: atomic writes, put-if-absent, listing by prefix."""

import os
import threading
from pathlib import Path

import pytest

from media_assets.storage import LocalInbox, LocalObjectStore


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "store")


def test_bytes_round_trip_and_listing_is_sorted_by_key(store: LocalObjectStore):
    store.put_bytes("a/2.txt", b"two")
    store.put_bytes("a/1.txt", b"one")
    store.put_bytes("b/3.txt", b"three")
    assert list(store.list("a/")) == ["a/1.txt", "a/2.txt"]
    assert store.read_bytes("a/1.txt") == b"one" and store.size("b/3.txt") == 5


def test_put_if_absent_keeps_the_first_writer(store: LocalObjectStore, tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    assert store.put_file_if_absent("k", first) is True
    assert store.put_file_if_absent("k", second) is False
    assert store.read_bytes("k") == b"first"


def test_concurrent_put_if_absent_stores_the_bytes_once(store: LocalObjectStore,
                                                       tmp_path: Path):
    sources = []
    for i in range(8):
        path = tmp_path / f"src{i}"
        path.write_bytes(b"same bytes")
        sources.append(path)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda p=p: results.append(
        store.put_file_if_absent("originals/x", p))) for p in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1
    assert list(store.list("")) == ["originals/x"]  # no temp files left behind


def test_a_failed_write_leaves_no_partial_object(store: LocalObjectStore, tmp_path: Path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(FileNotFoundError):
        store.put_file("k", missing)
    assert not store.exists("k")
    assert list(store.list("")) == []


def test_keys_cannot_escape_the_root(store: LocalObjectStore):
    with pytest.raises(ValueError):
        store.put_bytes("../outside", b"x")


def test_inbox_ignores_dotfiles_and_partial_downloads(tmp_path: Path):
    inbox = LocalInbox(tmp_path)
    for name in ["photo.jpg", ".hidden.jpg", "upload.jpg.part", "x.crdownload", "sub/b.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"data")
    assert [e.name for e in inbox.list_entries()] == ["photo.jpg", "sub/b.png"]
    assert inbox.read_header("photo.jpg", 2) == b"da"


def test_inbox_reads_a_range_without_reading_the_file_before_it(tmp_path: Path):
    (tmp_path / "clip.mp4").write_bytes(b"0123456789")
    inbox = LocalInbox(tmp_path)
    assert inbox.read_range("clip.mp4", 4, 3) == b"456"
    assert inbox.read_range("clip.mp4", 8, 100) == b"89"  # fewer at the end
    assert inbox.read_range("clip.mp4", 50, 4) == b""     # nothing past it
    with pytest.raises(ValueError):
        inbox.read_range("clip.mp4", -1, 4)


def test_a_ranged_read_of_a_fifo_never_blocks(tmp_path: Path):
    os.mkfifo(tmp_path / "trap.mp4")
    with pytest.raises(OSError):  # no writer: the open does not hang, the read refuses
        LocalInbox(tmp_path).read_range("trap.mp4", 0, 16)


def test_an_object_moved_to_the_cold_tier_keeps_its_key_and_stays_readable(tmp_path):
    store = LocalObjectStore(tmp_path / "store")
    store.put_bytes("originals/ab/cd/x.jpg", b"pixels")
    assert store.tier("originals/ab/cd/x.jpg") == "hot"
    store.set_tier("originals/ab/cd/x.jpg", "cold")
    assert store.tier("originals/ab/cd/x.jpg") == "cold"
    assert store.read_bytes("originals/ab/cd/x.jpg") == b"pixels"
    assert list(store.list("originals/")) == ["originals/ab/cd/x.jpg"]
    with store.local_path("originals/ab/cd/x.jpg") as path:
        assert path.read_bytes() == b"pixels"
    store.delete("originals/ab/cd/x.jpg")
    assert store.tier("originals/ab/cd/x.jpg") is None and not store.exists("originals/ab/cd/x.jpg")
