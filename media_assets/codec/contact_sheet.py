"""A small contact sheet of a batch's thumbnails, small enough to inline in the UI."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

WHITE = (255, 255, 255)


def contact_sheet(thumbnails: Sequence[Path], *, cell: int = 96, columns: int = 8,
                  limit: int = 48) -> Image.Image | None:
    """Tile up to `limit` thumbnails into one RGB image; None when there are none."""
    paths = list(thumbnails)[:limit]
    if not paths:
        return None
    columns = min(columns, len(paths))
    rows = math.ceil(len(paths) / columns)
    sheet = Image.new("RGB", (columns * cell, rows * cell), WHITE)
    for index, path in enumerate(paths):
        with Image.open(path) as thumb:
            thumb.thumbnail((cell - 4, cell - 4))
            tile = Image.new("RGB", thumb.size, WHITE)
            tile.paste(thumb, mask=thumb.getchannel("A") if "A" in thumb.getbands() else None)
        x = (index % columns) * cell + (cell - tile.width) // 2
        y = (index // columns) * cell + (cell - tile.height) // 2
        sheet.paste(tile, (x, y))
    return sheet


def data_uri(image: Image.Image, quality: int = 60) -> str:
    """Encode as a WebP data URI (a few KB for a sheet of 48 small tiles)."""
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode()
