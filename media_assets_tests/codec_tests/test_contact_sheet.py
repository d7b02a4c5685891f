"""Contact sheets show every file, captioned, in pages; a quarantined file is a grey tile
with its reason in red."""

import io

from PIL import Image

from media_assets.codec.contact_sheet import (
    ALARM,
    GREY,
    PAGE_TILES,
    Tile,
    contact_sheet,
    pages,
    sheet_pages,
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


def test_a_batchs_pages_are_rendered_in_order_as_webp(tmp_path):
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    tiles = []
    for number, colour in enumerate(colours):
        thumb = tmp_path / f"{number}.webp"
        Image.new("RGB", (250, 180), colour).save(thumb, "WEBP", lossless=True)
        tiles += [Tile(f"{number}-{i}.jpg", thumb) for i in range(2)]
    rendered = sheet_pages(tiles, per_page=2)  # three pages, drawn side by side
    assert len(rendered) == 3
    for data, colour in zip(rendered, colours, strict=True):
        with Image.open(io.BytesIO(data)) as page:
            assert page.format == "WEBP" and page.size == (2 * 112, 112 + 24)
            assert all(abs(a - b) < 24 for a, b in zip(page.convert("RGB").getpixel((56, 56)),
                                                        colour, strict=True))
