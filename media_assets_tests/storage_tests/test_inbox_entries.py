"""The inbox lists only single-linked regular files inside it; every other entry (links,
hard links, FIFOs, sockets, devices, folders named like media) is reported, never opened."""

import os
import socket
import stat

import pytest

from media_assets.codec.untrusted import UnsafeEntry
from media_assets.storage.local import LocalInbox


@pytest.fixture
def inbox(tmp_path):
    root = tmp_path / "inbox"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"\xff\xd8\xff" + b"s" * 100)
    return root, outside


def listing(root):
    reports = {}
    entries = {e.name for e in LocalInbox(root).list_entries(
        report=lambda name, why: reports.setdefault(name, why))}
    return entries, reports


def test_special_entries_are_reported_and_never_listed(inbox):
    root, outside = inbox
    (root / "good.jpg").write_bytes(b"good")
    (root / "sub" / "inner.png").write_bytes(b"inner")
    (root / "to_outside.jpg").symlink_to(outside / "secret.jpg")
    (root / "to_inside.jpg").symlink_to(root / "good.jpg")
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    (root / "dir_link").symlink_to(outside)
    os.link(outside / "secret.jpg", root / "hard.jpg")
    os.mkfifo(root / "pipe.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(root / "sock.jpg"))
    (root / "folder.jpg").mkdir()
    (root / "folder.jpg" / "within.png").write_bytes(b"within")
    entries, reports = listing(root)
    server.close()
    assert entries == {"good.jpg", "sub/inner.png", "folder.jpg/within.png"}
    assert {name: why.split(" (")[0].split(",")[0] for name, why in reports.items()} == {
        "to_outside.jpg": "symbolic link", "to_inside.jpg": "symbolic link",
        "dangling.jpg": "symbolic link", "loop.jpg": "symbolic link",
        "dir_link": "symbolic link to a folder", "hard.jpg": "hard link",
        "pipe.jpg": "FIFO", "sock.jpg": "socket",
        "folder.jpg": "a folder named like a media file",
    }


def test_a_device_file_is_reported_not_read(inbox):
    root, _ = inbox
    try:
        os.mknod(root / "null.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device file needs root (CAP_MKNOD)")
    _, reports = listing(root)
    assert reports == {"null.jpg": "character device, not a file"}
    with pytest.raises(UnsafeEntry, match="character device"):
        LocalInbox(root).read_header("null.jpg", 64)


def test_read_header_refuses_an_entry_swapped_after_listing(inbox):
    root, outside = inbox
    drop = LocalInbox(root)
    (root / "a.jpg").write_bytes(b"first")
    [entry] = drop.list_entries()
    (root / "a.jpg").unlink()
    (root / "a.jpg").symlink_to(outside / "secret.jpg")  # swapped between list and read
    with pytest.raises(UnsafeEntry):
        drop.read_header(entry.name, 64)
    os.unlink(root / "a.jpg")
    os.mkfifo(root / "a.jpg")
    with pytest.raises(UnsafeEntry, match="FIFO"):  # and never blocks
        drop.read_header(entry.name, 64)
    assert drop.remove_if_unchanged(entry.name, entry.size, entry.mtime) is False
    assert (root / "a.jpg").exists() and (outside / "secret.jpg").exists()


@pytest.mark.parametrize("name", ["../outside/secret.jpg", "/etc/passwd", "a/../../x",
                                  "nul\x00.jpg"])
def test_inbox_names_cannot_leave_the_inbox(inbox, name):
    with pytest.raises(ValueError):
        LocalInbox(inbox[0]).read_header(name, 64)
