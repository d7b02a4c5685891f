"""Pairing rules: name stems for sidecars, Apple content identifiers for live photos."""

import polars as pl
import pytest

from media_assets.codec.apple import apple_content_identifier, apple_maker_note
from media_assets.codec.sniff import sniff
from media_assets.records.links import name_stem, with_links
from media_assets.samples.av import XMP_SIDECAR


@pytest.mark.parametrize(("name", "stem"), [
    ("shoot/DSC_0002.JPG", "shoot/dsc_0002"),
    ("shoot/DSC_0002.xmp", "shoot/dsc_0002"),
    ("shoot/DSC_0002.jpg.xmp", "shoot/dsc_0002"),
    ("v1.2/clip", "v1.2/clip"),
    ("archive.tar.gz", "archive.tar"),
])
def test_name_stems(name, stem):
    assert name_stem(name) == stem


def test_the_content_identifier_is_read_back_from_an_apple_maker_note():
    assert apple_content_identifier(apple_maker_note("ABC-123")) == "ABC-123"


@pytest.mark.parametrize("note", [None, b"", b"Nikon\0" + bytes(40), b"Apple iOS\0\0\x01MM\xff",
                                  apple_maker_note("ABC-123")[:24]])
def test_other_or_damaged_maker_notes_give_nothing(note):
    assert apple_content_identifier(note) is None


def test_xmp_is_recognised_from_its_bytes():
    assert sniff(XMP_SIDECAR.encode()).kind == "sidecar"
    assert sniff(b'<?xml version="1.0"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/"/>').type == "xmp"
    assert sniff(b"<html><body>not a sidecar</body></html>").kind == "other"


def test_links_are_symmetric_and_need_a_sidecar_or_an_identifier():
    view = pl.DataFrame({
        "content_id": ["a", "b", "c", "d", "e"],
        "media_kind": ["image", "video", "image", "sidecar", "image"],
        "live_photo_id": ["L1", "L1", None, None, None],
        "name_stem": ["x/img_1", "x/img_1", "y/dsc_2", "y/dsc_2", "y/dsc_2"],
    })
    linked = dict(zip(*with_links(view).select("content_id", "linked_content_ids")
                      .to_dict(as_series=False).values(), strict=True))
    assert linked == {"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c", "e"], "e": ["d"]}
