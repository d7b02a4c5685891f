"""Every format that carries an EXIF Orientation gets it applied exactly once: each
derivative equals `ImageOps.exif_transpose(Image.open(f))`, and the metadata's display size
is the upright one, for all 8 orientations."""

import io
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from media_assets.codec.file_pass import FileJob, process_file
from media_assets.core.policy import Policy

FORMATS = [("JPEG", "jpg"), ("TIFF", "tif"), ("WEBP", "webp"), ("PNG", "png")]


def marked_image() -> Image.Image:
    """400 x 200, red, with a blue top-left quarter: any turn or flip moves the blue."""
    image = Image.new("RGB", (400, 200), (220, 20, 20))
    image.paste((20, 20, 220), (0, 0, 200, 100))
    return image


def quarters(image: Image.Image) -> list[bool]:
    """Which quarter centres are blue, in reading order."""
    w, h = image.size
    rgb = image.convert("RGB")
    return [rgb.getpixel((x, y))[2] > 128
            for y in (h // 4, 3 * h // 4) for x in (w // 4, 3 * w // 4)]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("fmt", "ext"), FORMATS)
def test_the_derivative_is_turned_upright_once(tmp_path: Path, fmt, ext, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    marked_image().save(buffer, fmt, exif=exif.tobytes(), **({"quality": 95}
                                                             if fmt in ("JPEG", "WEBP") else {}))
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    inbox.mkdir()
    staging.mkdir()
    (inbox / f"photo.{ext}").write_bytes(buffer.getvalue())
    with Image.open(io.BytesIO(buffer.getvalue())) as source:
        upright = ImageOps.exif_transpose(source)
    result = process_file(FileJob(
        source=str(inbox / f"photo.{ext}"), staging_dir=str(staging), policy=Policy(),
        intake=True, inbox_root=str(inbox), metadata_kinds=frozenset({"image"}),
        derivative_assets=("previews",)), str(tmp_path / "out"))

    assert result.failure is None
    [preview] = result.outputs
    with Image.open(preview.path) as made:
        assert made.size == upright.size
        assert quarters(made) == quarters(upright)
    meta = result.metadata
    assert (meta["display_width"], meta["display_height"]) == upright.size
    assert meta["orientation"] == orientation
