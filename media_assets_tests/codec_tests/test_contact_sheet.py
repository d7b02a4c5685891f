"""Contact sheets show every file, captioned, in pages; a quarantined file is a grey tile
with its reason in red."""

from PIL import Image

from media_assets.codec.contact_sheet import (
    ALARM,
    GREY,
    PAGE_TILES,
    Tile,
    contact_sheet,
    pages,
)


def test_every_file_is_a_captioned_tile_and_a_quarantined_one_is_grey_with_its_reason(tmp_path):
    thumb = tmp_path / "t.webp"
    Image.new("RGB", (250, 180), (20, 120, 200)).save(thumb, "WEBP", lossless=True)
    sheet = contact_sheet([Tile("IMG_0001.jpg", thumb),
                           Tile("broken.jpg", None, "truncated")],
                          cell=112, columns=8)
    assert sheet is not None and sheet.size == (2 * 112, 112 + 24)
    assert sheet.getpixel((56, 56)) == (20, 120, 200)  # the thumbnail, centred
    assert sheet.getpixel((112 + 56, 56)) == GREY  # no picture: the grey tile
    caption_band = sheet.crop((112, 112 + 11, 224, 112 + 24))
    reds = [p for p in caption_band.getdata() if p[0] > 120 and p[1] < 80]
    assert reds, "the reason is drawn in red"
    assert ALARM[0] > 120


def test_pages_hold_at_most_a_page_of_tiles_and_keep_every_file():
    tiles = [Tile(f"f{i}.jpg") for i in range(2 * PAGE_TILES + 5)]
    paged = pages(tiles)
    assert [len(p) for p in paged] == [PAGE_TILES, PAGE_TILES, 5]
    assert [t for p in paged for t in p] == tiles
    assert contact_sheet([]) is None
