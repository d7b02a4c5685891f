"""The storage contract, on local folders and on S3: atomic writes, put-if-absent, listing by
prefix, tiers, and the inbox's listing, header reads and guarded removal."""

import os
import threading
from pathlib import Path

import pytest

from media_assets.storage import LocalInbox


def test_bytes_round_trip_and_listing_is_sorted_by_key(store):
    store.put_bytes("a/2.txt", b"two")
    store.put_bytes("a/1.txt", b"one")
    store.put_bytes("b/3.txt", b"three")
    assert list(store.list("a/")) == ["a/1.txt", "a/2.txt"]
    assert store.read_bytes("a/1.txt") == b"one" and store.size("b/3.txt") == 5


def test_a_listing_prefix_is_a_folder(store):
    store.put_bytes("a/1.txt", b"one")
    store.put_bytes("ab/2.txt", b"two")
    assert list(store.list("a")) == list(store.list("a/")) == ["a/1.txt"]
    assert list(store.list("")) == ["a/1.txt", "ab/2.txt"]


def test_put_if_absent_keeps_the_first_writer(store, tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"first")
    second.write_bytes(b"second")
    assert store.put_file_if_absent("k", first) is True
    assert store.put_file_if_absent("k", second) is False
    assert store.read_bytes("k") == b"first"
    assert store.put_bytes_if_absent("k", b"third") is False
    assert store.put_bytes_if_absent("j", b"jay") is True and store.read_bytes("j") == b"jay"


def test_concurrent_put_if_absent_stores_the_bytes_once(store, tmp_path: Path):
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


def test_a_failed_write_leaves_no_partial_object(store, tmp_path: Path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(FileNotFoundError):
        store.put_file("k", missing)
    assert not store.exists("k")
    assert list(store.list("")) == []


def test_a_missing_object_is_file_not_found(store):
    with pytest.raises(FileNotFoundError):
        store.read_bytes("nothing/here")
    with pytest.raises(FileNotFoundError), store.local_path("nothing/here"):
        pass
    assert not store.exists("nothing/here") and store.tier("nothing/here") is None
    store.delete("nothing/here")  # deleting what is not there is fine


def test_keys_cannot_escape_the_root(store):
    with pytest.raises(ValueError):
        store.put_bytes("../outside", b"x")


def test_a_file_round_trips_through_local_path_and_open_read(store, tmp_path: Path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(bytes(range(256)) * 1000)
    store.put_file("originals/ab/cd/clip.mp4", source)
    with store.local_path("originals/ab/cd/clip.mp4") as path:
        assert path.read_bytes() == source.read_bytes()
    with store.open_read("originals/ab/cd/clip.mp4") as handle:
        assert handle.read(256) == bytes(range(256))
    assert store.size("originals/ab/cd/clip.mp4") == 256_000


def test_an_object_moved_to_the_cold_tier_keeps_its_key_and_stays_readable(store):
    store.put_bytes("originals/ab/cd/x.jpg", b"pixels")
    assert store.tier("originals/ab/cd/x.jpg") == "hot"
    store.set_tier("originals/ab/cd/x.jpg", "cold")
    assert store.tier("originals/ab/cd/x.jpg") == "cold"
    assert store.read_bytes("originals/ab/cd/x.jpg") == b"pixels"
    assert list(store.list("originals/")) == ["originals/ab/cd/x.jpg"]
    with store.local_path("originals/ab/cd/x.jpg") as path:
        assert path.read_bytes() == b"pixels"
    store.set_tier("originals/ab/cd/x.jpg", "hot")
    assert store.tier("originals/ab/cd/x.jpg") == "hot"
    store.delete("originals/ab/cd/x.jpg")
    assert store.tier("originals/ab/cd/x.jpg") is None and not store.exists("originals/ab/cd/x.jpg")


def test_the_inbox_ignores_dotfiles_and_partial_downloads(dropbox):
    for name in ["photo.jpg", ".hidden.jpg", "upload.jpg.part", "x.crdownload", "sub/b.png"]:
        dropbox.drop(name, b"data")
    assert [e.name for e in dropbox.inbox.list_entries()] == ["photo.jpg", "sub/b.png"]
    assert [e.name for e in dropbox.inbox.scan()] == ["photo.jpg", "sub/b.png"]
    assert dropbox.inbox.read_header("photo.jpg", 2) == b"da"
    assert dropbox.inbox.read_header("photo.jpg", 100) == b"data"


def test_an_empty_inbox_file_has_an_empty_header(dropbox):
    dropbox.drop("empty.jpg", b"")
    [entry] = dropbox.inbox.list_entries()
    assert entry.size == 0 and dropbox.inbox.read_header("empty.jpg", 64) == b""


def test_the_inbox_removes_a_file_only_while_it_is_the_one_listed(dropbox):
    dropbox.drop("a.jpg", b"first")
    [entry] = dropbox.inbox.list_entries()
    with dropbox.inbox.local_path("a.jpg") as path:
        assert path.read_bytes() == b"first"
    assert dropbox.inbox.remove_if_unchanged("a.jpg", entry.size + 1, entry.mtime) is False
    assert dropbox.inbox.exists("a.jpg")
    assert dropbox.inbox.remove_if_unchanged("a.jpg", entry.size, entry.mtime) is True
    assert not dropbox.inbox.exists("a.jpg")
    assert dropbox.inbox.remove_if_unchanged("a.jpg", entry.size, entry.mtime) is True


def test_the_inbox_reads_a_range_without_reading_what_comes_before(dropbox):
    dropbox.drop("clip.mp4", b"0123456789")
    assert dropbox.inbox.read_range("clip.mp4", 4, 3) == b"456"
    assert dropbox.inbox.read_range("clip.mp4", 8, 100) == b"89"  # fewer at the end
    assert dropbox.inbox.read_range("clip.mp4", 50, 4) == b""     # nothing past it
    with pytest.raises(ValueError):
        dropbox.inbox.read_range("clip.mp4", -1, 4)


def test_a_ranged_read_of_a_fifo_never_blocks(tmp_path: Path):
    os.mkfifo(tmp_path / "trap.mp4")
    with pytest.raises(OSError):  # no writer: the open does not hang, the read refuses
        LocalInbox(tmp_path).read_range("trap.mp4", 0, 16)

