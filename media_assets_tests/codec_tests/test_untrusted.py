"""Inbox names are untrusted: they are sanitised into metadata, never used for a key; inbox
files are opened only as single-linked regular files inside the inbox, never via a link."""

import os
import unicodedata

import pytest

from media_assets.codec.intake import stage_file
from media_assets.codec.untrusted import (
    MAX_NAME_CHARS,
    UnsafeEntry,
    display_names,
    open_untrusted,
    sanitize_name,
)
from media_assets.core.policy import Limits
from media_assets.records.layout import original_key, quarantine_record_key

NFC = unicodedata.normalize("NFC", "café.jpg")
NFD = unicodedata.normalize("NFD", "café.jpg")


@pytest.mark.parametrize(("raw", "clean"), [
    ("../../etc/passwd", "etc/passwd"),
    ("/etc/shadow", "etc/shadow"),
    ("a/./b/../c.jpg", "a/b/c.jpg"),
    ("..\\..\\windows\\win.ini", "windows/win.ini"),
    ("nul\x00byte.jpg", "nul\ufffdbyte.jpg"),
    ("esc\x1b[31mred.jpg", "esc\ufffd[31mred.jpg"),
    ("new\nline\r.jpg", "new\ufffdline\ufffd.jpg"),
    ("del\x7f\x9b.jpg", "del\ufffd\ufffd.jpg"),  # DEL and the C1 CSI
    ("evil\u202egpj.exe", "evil\ufffdgpj.exe"),  # right-to-left override
    ("zero\u200bwidth.jpg", "zero\ufffdwidth.jpg"),
    (NFD, NFC),
    ("ﬁle.jpg", "ﬁle.jpg"),  # NFC keeps compatibility characters (NFKC would not)
    ("caf\udce9.jpg", "caf\ufffd.jpg"),  # a byte that is not UTF-8 (surrogate escape)
    ("", None), ("..", None), ("/", None),
])
def test_names_are_sanitised(raw, clean):
    got = sanitize_name(raw)
    if clean is None:
        assert got.startswith("unnamed-")
    else:
        assert got == clean
    assert got == sanitize_name(got) or got.startswith("unnamed-")  # idempotent
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in got)


def test_over_long_names_are_cut_with_a_hash_of_the_whole_name():
    long_a, long_b = "d/" * 400 + "a" * 300 + ".jpg", "d/" * 400 + "a" * 300 + "b.jpg"
    a, b = sanitize_name(long_a), sanitize_name(long_b)
    assert len(a) == len(b) == MAX_NAME_CHARS and a != b
    assert "…" in a and a.endswith(".jpg")


def test_names_that_collide_after_normalisation_stay_distinct():
    shown = display_names([NFC, NFD, "x\x1b.jpg", "x\x1c.jpg", "plain.jpg"])
    assert shown[NFC] == NFC  # the name that needed no change keeps it
    assert shown[NFD].startswith(NFC + "~") and shown[NFD] != NFC
    assert shown["x\x1b.jpg"] != shown["x\x1c.jpg"]
    assert len(set(shown.values())) == 5
    assert shown["plain.jpg"] == "plain.jpg"
    assert display_names([NFD]) == {NFD: NFC}  # alone, an NFD name is simply normalised


def test_store_keys_never_derive_from_names():
    cid = "ab" * 32
    assert original_key(cid, "jpg") == f"originals/ab/ab/{cid}.jpg"
    record = quarantine_record_key("b1", cid, "../../etc/passwd\x1b")
    assert ".." not in record and "passwd" not in record


@pytest.fixture
def inbox(tmp_path):
    (tmp_path / "inbox").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.jpg").write_bytes(b"\xff\xd8\xffsecret")
    return tmp_path / "inbox"


def test_open_untrusted_refuses_links_special_files_and_escapes(inbox, tmp_path):
    secret = tmp_path / "outside" / "secret.jpg"
    (inbox / "link.jpg").symlink_to(secret)
    os.link(secret, inbox / "hard.jpg")
    os.mkfifo(inbox / "pipe.jpg")
    (inbox / "dir.jpg").mkdir()
    (inbox / "sub").symlink_to(tmp_path / "outside")  # a folder swapped for a link
    (inbox / "ok.jpg").write_bytes(b"fine")
    (tmp_path / "outside" / "other.jpg").write_bytes(b"other")
    for name, words in [("link.jpg", "symbolic link"), ("hard.jpg", "hard link"),
                        ("pipe.jpg", "FIFO"), ("sub/other.jpg", "outside the inbox")]:
        with pytest.raises(UnsafeEntry, match=words):
            open_untrusted(inbox / name, inbox)
    with pytest.raises(OSError):
        open_untrusted(inbox / "dir.jpg", inbox)
    with open_untrusted(inbox / "ok.jpg", inbox) as handle:
        assert handle.read() == b"fine"


def test_staging_a_file_swapped_for_a_link_reads_nothing(inbox, tmp_path):
    (inbox / "swapped.jpg").symlink_to(tmp_path / "outside" / "secret.jpg")
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(UnsafeEntry):
        stage_file(str(inbox / "swapped.jpg"), str(staging), Limits(), str(inbox))
    assert list(staging.iterdir()) == []  # no partial copy left
