"""Specification of the pure image core: probing, metadata and derivative rendering."""

from __future__ import annotations

import io
import json
import re
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageChops, ImageCms, ImageFile, JpegImagePlugin, features

from media_assets.codec import image_render, images
from media_assets.codec.image_render import decode_for_derivatives, render_derivatives
from media_assets.codec.images import extract_metadata, probe_image, register_plugins
from media_assets.core.errors import Rejected, TransientError
from media_assets.core.policy import DerivativeSpec
from media_assets.samples import synth_photo, write_jpeg_with_orientation, write_sample_images

MAX_PIXELS = 50_000_000
THUMB = DerivativeSpec("thumbnail", 250, "webp", 80)
PREVIEW = DerivativeSpec("preview", 1440, "jpeg", 80)
SMALL_WEBP = DerivativeSpec("small", 60, "webp", 90)
SMALL_JPEG = DerivativeSpec("small_jpeg", 60, "jpeg", 90)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def save(image: Image.Image, path: Path, fmt: str, **params: object) -> Path:
    image.save(path, fmt, **params)
    return path


def render_one(path: Path, out: Path, spec: DerivativeSpec = SMALL_WEBP) -> Image.Image:
    """Render a single spec and return the output, loaded."""
    rendered = render_derivatives(path, [spec], out, MAX_PIXELS)[spec.name]
    with Image.open(rendered.path) as im:
        im.load()
        return im


def red_square_on_transparent(size: int = 80) -> Image.Image:
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    return image


def png_with_declared_size(path: Path, width: int, height: int) -> Path:
    """A tiny valid PNG whose IHDR (CRC fixed up) claims width x height."""
    buffer = io.BytesIO()
    Image.new("1", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def no_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything decodes pixels."""

    def forbidden(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"pixels of {self.format} were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", forbidden)


# --- orientation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_renders_upright(tmp_path: Path, orientation: int) -> None:
    source = tmp_path / "oriented.jpg"
    write_jpeg_with_orientation(source, orientation, size=(256, 128))  # big enough to draft
    assert probe_image(source, MAX_PIXELS).orientation == orientation

    out = render_one(source, tmp_path / "out")

    assert out.size == ((30, 60) if orientation >= 5 else (60, 30))  # 5..8 swap width/height
    w, h = out.size
    rgb = out.convert("RGB")
    assert near(rgb.getpixel((w // 4, h // 4)), RED, 40), "top-left quadrant must be red"
    assert near(rgb.getpixel((3 * w // 4, h // 4)), BLUE, 40)
    assert near(rgb.getpixel((w // 4, 3 * h // 4)), BLUE, 40)
    assert near(rgb.getpixel((3 * w // 4, 3 * h // 4)), BLUE, 40)


def test_orientation_is_applied_to_avif_too(tmp_path: Path) -> None:
    if not features.check("avif"):
        pytest.skip("this Pillow build has no AVIF support")
    upright = tmp_path / "upright.jpg"
    write_jpeg_with_orientation(upright, 6, size=(64, 32))
    with Image.open(upright) as im:
        source = save(im.convert("RGB"), tmp_path / "o6.avif", "AVIF", exif=im.info["exif"])

    out = render_one(source, tmp_path / "out").convert("RGB")

    assert out.size == (30, 60)
    assert near(out.getpixel((7, 15)), RED, 60)
    assert near(out.getpixel((22, 45)), BLUE, 60)


# --- what the outputs carry -----------------------------------------------------------------------


def test_outputs_carry_no_exif_gps_xmp_or_foreign_icc(
    tmp_path: Path, samples: dict[str, Path], swapped_rg_icc: bytes
) -> None:
    source = tmp_path / "tagged.jpg"
    with Image.open(samples["camera_rotated.jpg"]) as im:
        exif = im.info["exif"]
        im.save(source, "JPEG", exif=exif, icc_profile=swapped_rg_icc, xmp=b"<x:xmpmeta/>")
    with Image.open(source) as check:
        assert check.getexif().get_ifd(ExifTags.IFD.GPSInfo) and "xmp" in check.info

    rendered = render_derivatives(source, [SMALL_WEBP, SMALL_JPEG], tmp_path / "out", MAX_PIXELS)

    for derivative in rendered.values():
        with Image.open(derivative.path) as out:
            assert not out.getexif(), f"{derivative.name} leaks EXIF"
            assert "exif" not in out.info and "xmp" not in out.info
            assert "icc_profile" not in out.info
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "small.webp", "small_jpeg.jpg"
    ], "only the finished files remain: no temp files"


def test_encoder_settings(tmp_path: Path, samples: dict[str, Path]) -> None:
    rendered = render_derivatives(
        samples["web.webp"], [SMALL_WEBP, SMALL_JPEG], tmp_path / "out", MAX_PIXELS
    )
    with Image.open(rendered["small_jpeg"].path) as jpeg:
        assert jpeg.format == "JPEG"
        assert jpeg.info.get("progressive")
        assert JpegImagePlugin.get_sampling(jpeg) == 2  # 4:2:0
    with Image.open(rendered["small"].path) as webp:
        assert webp.format == "WEBP"
    small = rendered["small"]
    assert small.path == tmp_path / "out" / "small.webp" and small.format == "webp"
    assert small.bytes == small.path.stat().st_size
    assert (small.width, small.height) == (60, 45)


# --- colour ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_non_srgb_icc_profile_is_converted_to_srgb(
    tmp_path: Path, swapped_rg_icc: bytes, fmt: str
) -> None:
    source = save(Image.new("RGB", (80, 80), RED), tmp_path / f"wide.{fmt.lower()}", fmt,
                  icc_profile=swapped_rg_icc)
    assert "Swapped" in extract_metadata(source, MAX_PIXELS)["icc_profile"]

    out = render_one(source, tmp_path / "out").convert("RGB")

    assert near(out.getpixel((30, 30)), GREEN, 20), "the profile's red primary is sRGB green"


def test_srgb_tagged_source_passes_through(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = save(Image.new("RGB", (80, 80), (200, 100, 50)), tmp_path / "srgb.png", "PNG",
                  icc_profile=srgb)

    out = render_one(source, tmp_path / "out").convert("RGB")

    assert near(out.getpixel((30, 30)), (200, 100, 50), 6)


def test_cmyk_jpeg_becomes_correct_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (80, 80), (255, 0, 0, 0))  # pure cyan
    cmyk.paste((0, 255, 0, 0), (0, 40, 80, 80))  # pure magenta below
    source = save(cmyk, tmp_path / "print.jpg", "JPEG", quality=95)
    assert probe_image(source, MAX_PIXELS).mode == "CMYK"

    for spec in (SMALL_WEBP, SMALL_JPEG):
        out = render_one(source, tmp_path / spec.name, spec).convert("RGB")
        assert near(out.getpixel((30, 10)), (0, 255, 255), 20)
        assert near(out.getpixel((30, 50)), (255, 0, 255), 20)


@pytest.mark.parametrize("fmt", ["TIFF", "PNG"])
def test_16_bit_grayscale_is_scaled_to_8_bit_not_clipped(tmp_path: Path, fmt: str) -> None:
    scan = Image.new("I;16", (96, 32), 32768)  # mid-gray
    scan.paste(Image.new("I;16", (32, 32), 16384), (0, 0))  # quarter
    scan.paste(Image.new("I;16", (32, 32), 65535), (64, 0))  # white
    source = save(scan, tmp_path / f"scan.{fmt.lower()}", fmt)
    assert probe_image(source, MAX_PIXELS).mode.startswith("I;16")
    assert extract_metadata(source, MAX_PIXELS)["bit_depth"] == 16

    out = render_one(source, tmp_path / "out", DerivativeSpec("g", 96, "jpeg", 95)).convert("L")

    assert abs(out.getpixel((16, 16)) - 64) <= 3
    assert abs(out.getpixel((48, 16)) - 128) <= 3
    assert abs(out.getpixel((80, 16)) - 255) <= 3


# --- alpha, palettes, odd modes -------------------------------------------------------------------


def test_alpha_is_kept_in_webp_and_flattened_on_white_in_jpeg(tmp_path: Path) -> None:
    source = save(red_square_on_transparent(), tmp_path / "logo.png", "PNG")
    rendered = render_derivatives(
        source, [DerivativeSpec("w", 80, "webp", 90), DerivativeSpec("j", 80, "jpeg", 90)],
        tmp_path / "out", MAX_PIXELS,
    )

    with Image.open(rendered["w"].path) as webp:
        webp = webp.convert("RGBA")
        assert webp.getpixel((2, 2))[3] == 0, "transparent corner stays transparent"
        assert near(webp.getpixel((40, 40)), (255, 0, 0, 255))
    with Image.open(rendered["j"].path) as jpeg:
        assert jpeg.mode == "RGB"
        assert near(jpeg.getpixel((2, 2)), WHITE, 6), "flattened on white, not black"
        assert near(jpeg.getpixel((40, 40)), RED, 20)


def test_opaque_alpha_channel_is_dropped(tmp_path: Path) -> None:
    source = save(Image.new("RGBA", (40, 40), (10, 200, 30, 255)), tmp_path / "opaque.png", "PNG")
    assert render_one(source, tmp_path / "out").mode == "RGB"


def test_palette_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (10, 10, 30, 30))  # a blue square on "transparent red"
    source = save(palette, tmp_path / "palette.png", "PNG", transparency=0)

    out = render_one(source, tmp_path / "out", DerivativeSpec("p", 40, "webp", 90))

    assert out.mode == "RGBA"
    assert out.getpixel((1, 1))[3] == 0
    assert near(out.getpixel((20, 20)), (0, 0, 255, 255), 20)


def test_colour_keyed_transparency_becomes_alpha(tmp_path: Path) -> None:
    keyed = Image.new("RGB", (40, 40), (0, 255, 0))
    keyed.paste(BLUE, (10, 10, 30, 30))
    source = save(keyed, tmp_path / "keyed.png", "PNG", transparency=(0, 255, 0))

    out = render_one(source, tmp_path / "out", DerivativeSpec("k", 40, "webp", 90))

    assert out.mode == "RGBA" and out.getpixel((1, 1))[3] == 0
    assert near(out.getpixel((20, 20)), (*BLUE, 255), 20)


@pytest.mark.parametrize(
    ("mode", "colour", "expected_mode"),
    [("1", 1, "RGB"), ("L", 90, "RGB"), ("LA", (90, 128), "RGBA"), ("RGBA", (1, 2, 3, 4), "RGBA")],
)
def test_other_modes_become_8_bit_rgb_or_rgba(
    tmp_path: Path, mode: str, colour: object, expected_mode: str
) -> None:
    source = save(Image.new(mode, (40, 40), colour), tmp_path / f"{mode}.png", "PNG")
    assert render_one(source, tmp_path / "out").mode == expected_mode


@pytest.mark.parametrize(("fmt", "suffix"), [("GIF", "gif"), ("WEBP", "webp"), ("PNG", "png")])
def test_animation_renders_its_first_frame_as_a_still(
    tmp_path: Path, fmt: str, suffix: str
) -> None:
    first, *rest = [Image.new("RGB", (80, 60), colour) for colour in (RED, GREEN, BLUE)]
    source = tmp_path / f"anim.{suffix}"
    first.save(source, fmt, save_all=True, append_images=rest, duration=100, loop=0)
    assert probe_image(source, MAX_PIXELS).frames == 3
    assert extract_metadata(source, MAX_PIXELS)["animated"] is True

    for spec in (SMALL_WEBP, SMALL_JPEG):
        rendered = render_derivatives(source, [spec], tmp_path / spec.name, MAX_PIXELS)
        with Image.open(rendered[spec.name].path) as out:
            assert getattr(out, "n_frames", 1) == 1 and not getattr(out, "is_animated", False)
            assert near(out.convert("RGB").getpixel((30, 20)), RED, 20)


# --- other containers -----------------------------------------------------------------------------


def test_heic_is_read(tmp_path: Path) -> None:
    register_plugins()
    import pillow_heif

    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("libheif was built without a HEIC encoder, cannot make a test file")
    picture = Image.new("RGB", (96, 64), BLUE)
    picture.paste(RED, (0, 0, 48, 32))
    source = save(picture, tmp_path / "photo.heic", "HEIF", quality=90)

    probe = probe_image(source, MAX_PIXELS)
    assert (probe.format, probe.width, probe.height) == ("heic", 96, 64)
    out = render_one(source, tmp_path / "out").convert("RGB")
    assert out.size == (60, 40)
    assert near(out.getpixel((10, 8)), RED, 40) and near(out.getpixel((50, 30)), BLUE, 40)


def test_avif_is_read(tmp_path: Path) -> None:
    if not features.check("avif"):
        pytest.skip("this Pillow build has no AVIF support")
    picture = Image.new("RGB", (96, 64), BLUE)
    picture.paste(RED, (0, 0, 48, 32))
    source = save(picture, tmp_path / "photo.avif", "AVIF", quality=90)

    probe = probe_image(source, MAX_PIXELS)
    assert (probe.format, probe.width, probe.height) == ("avif", 96, 64)
    out = render_one(source, tmp_path / "out").convert("RGB")
    assert out.size == (60, 40)
    assert near(out.getpixel((10, 8)), RED, 40) and near(out.getpixel((50, 30)), BLUE, 40)


# --- geometry and the single decode ---------------------------------------------------------------


def test_never_upscales(tmp_path: Path) -> None:
    source = save(Image.new("RGB", (100, 50), GREEN), tmp_path / "small.png", "PNG")
    rendered = render_derivatives(source, [THUMB, PREVIEW], tmp_path / "out", MAX_PIXELS)
    assert {(r.width, r.height) for r in rendered.values()} == {(100, 50)}


@pytest.fixture(scope="module")
def camera_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1600 x 1200 camera-like JPEG: big enough for DCT scaling to matter."""
    path = tmp_path_factory.mktemp("camera") / "camera.jpg"
    synth_photo((1600, 1200), seed=3).save(path, "JPEG", quality=90)
    return path


def test_long_edge_is_bounded_and_aspect_kept(tmp_path: Path, camera_jpeg: Path) -> None:
    rendered = render_derivatives(camera_jpeg, [THUMB, PREVIEW], tmp_path / "out", MAX_PIXELS)
    assert (rendered["preview"].width, rendered["preview"].height) == (1440, 1080)
    thumb = rendered["thumbnail"]
    assert thumb.width == 250 and abs(thumb.height - 250 * 1200 / 1600) <= 1
    with Image.open(thumb.path) as im:
        assert im.size == (thumb.width, thumb.height)


def test_jpeg_is_decoded_reduced_by_dct_scaling(camera_jpeg: Path) -> None:
    # 1600 px / 4 = 400 >= 250 while 1600 / 8 = 200 < 250: the decoder scales by 4.
    assert decode_for_derivatives(camera_jpeg, 250, MAX_PIXELS).size == (400, 300)
    # 1600 / 2 = 800 < 1440: no scaling possible.
    assert decode_for_derivatives(camera_jpeg, 1440, MAX_PIXELS).size == (1600, 1200)


def test_other_formats_are_box_reduced_to_the_draft_edge(tmp_path: Path) -> None:
    source = save(synth_photo((1600, 1200), seed=4, noise=0), tmp_path / "big.png", "PNG")
    decoded = decode_for_derivatives(source, 250, MAX_PIXELS)
    assert decoded.size == (267, 200) and decoded.mode == "RGB"  # reduce(6): still >= 250


def test_thumbnail_alone_equals_thumbnail_rendered_with_preview(
    tmp_path: Path, camera_jpeg: Path
) -> None:
    alone = render_derivatives(
        camera_jpeg, [THUMB], tmp_path / "alone", MAX_PIXELS, draft_edge=PREVIEW.long_edge
    )["thumbnail"]
    together = render_derivatives(
        camera_jpeg, [THUMB, PREVIEW], tmp_path / "together", MAX_PIXELS
    )["thumbnail"]

    with Image.open(alone.path) as a, Image.open(together.path) as b:
        a, b = a.convert("RGB"), b.convert("RGB")
        assert a.size == b.size
        diff = ImageChops.difference(a, b)
        mean_abs = sum(sum(band) for band in zip(*diff.getdata(), strict=True)) / (
            a.width * a.height * 3
        )
    assert mean_abs < 1.0
    assert alone.path.read_bytes() == together.path.read_bytes()


# --- rejections -----------------------------------------------------------------------------------


def test_truncated_jpeg_is_rejected_and_writes_nothing(
    tmp_path: Path, samples: dict[str, Path]
) -> None:
    out_dir = tmp_path / "out"
    with pytest.raises(Rejected) as caught:
        render_derivatives(samples["broken.jpg"], [THUMB, PREVIEW], out_dir, MAX_PIXELS)
    assert caught.value.reason in {"truncated", "corrupt"}
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_truncated_png_is_rejected(tmp_path: Path) -> None:
    whole = io.BytesIO()
    synth_photo((200, 150), seed=5).save(whole, "PNG")
    source = tmp_path / "cut.png"
    source.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(Rejected) as caught:
        render_derivatives(source, [SMALL_WEBP], tmp_path / "out", MAX_PIXELS)
    assert caught.value.reason in {"truncated", "corrupt"}


@pytest.mark.parametrize("call", [probe_image, extract_metadata])
def test_zero_byte_file_is_rejected_as_empty(tmp_path: Path, call: object) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(Rejected) as caught:
        call(empty, MAX_PIXELS)  # type: ignore[operator]
    assert caught.value.reason == "empty"
    with pytest.raises(Rejected, match="empty"):
        render_derivatives(empty, [THUMB], tmp_path / "out", MAX_PIXELS)


def test_non_image_is_rejected_as_corrupt(samples: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(Rejected) as caught:
        probe_image(samples["notes.txt"], MAX_PIXELS)
    assert caught.value.reason == "corrupt"
    with pytest.raises(Rejected, match="corrupt"):
        render_derivatives(samples["notes.txt"], [THUMB], tmp_path / "out", MAX_PIXELS)


def test_missing_file_is_transient_not_a_verdict_on_the_file(tmp_path: Path) -> None:
    with pytest.raises(TransientError):
        probe_image(tmp_path / "gone.jpg", MAX_PIXELS)


@pytest.mark.parametrize(
    ("width", "height"),
    [(30_000, 30_000), (4_000, 3_000)],  # beyond Pillow's own bomb guard / only beyond ours
)
def test_decompression_bomb_is_rejected_from_the_header(
    tmp_path: Path, no_pixel_decoding: None, width: int, height: int
) -> None:
    bomb = png_with_declared_size(tmp_path / "bomb.png", width, height)
    started = time.perf_counter()
    for call in (probe_image, extract_metadata):
        with pytest.raises(Rejected) as caught:
            call(bomb, 10_000_000)
        assert caught.value.reason == "too_many_pixels"
    with pytest.raises(Rejected) as caught:
        render_derivatives(bomb, [THUMB, PREVIEW], tmp_path / "out", 10_000_000)
    assert caught.value.reason == "too_many_pixels"
    assert time.perf_counter() - started < 1.0


def test_pillow_global_limits_are_left_alone(tmp_path: Path, samples: dict[str, Path]) -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    render_derivatives(samples["camera_rotated.jpg"], [THUMB], tmp_path / "ok", MAX_PIXELS)
    with pytest.raises(Rejected):
        render_derivatives(samples["broken.jpg"], [THUMB], tmp_path / "bad", MAX_PIXELS)
    after = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    assert after == before


# --- probing and metadata -------------------------------------------------------------------------


def test_metadata_of_a_rotated_camera_photo(
    samples: dict[str, Path], no_pixel_decoding: None
) -> None:
    meta = extract_metadata(samples["camera_rotated.jpg"], MAX_PIXELS)

    assert json.loads(json.dumps(meta)) == meta, "JSON-serialisable"
    assert meta["format"] == "jpeg"
    assert (meta["width"], meta["height"]) == (320, 240)
    assert (meta["display_width"], meta["display_height"]) == (240, 320)
    assert meta["orientation"] == 6
    assert meta["camera_make"] == "Synthetic Optics"
    assert meta["camera_model"] == "SO-1 Mark II"
    assert meta["lens_model"] == "SO 24-70mm f/2.8"
    assert meta["capture_time"] == "2024-05-17T14:03:22+02:00"
    assert meta["gps_present"] is True
    assert meta["artist"] == "Ada Example"
    assert meta["copyright"] == "(c) 2024 Ada Example"
    assert meta["software"] == "media_assets.samples"
    assert (meta["bit_depth"], meta["has_alpha"], meta["frames"], meta["animated"]) == (
        8, False, 1, False
    )


def test_metadata_without_exif_is_none_not_missing(
    samples: dict[str, Path], no_pixel_decoding: None
) -> None:
    meta = extract_metadata(samples["logo_alpha.png"], MAX_PIXELS)
    assert meta["has_alpha"] is True and meta["mode"] == "RGBA"
    absent = ("camera_make", "camera_model", "lens_model", "capture_time", "artist", "icc_profile")
    for key in absent:
        assert key in meta and meta[key] is None
    assert meta["gps_present"] is False and meta["orientation"] == 1


def test_metadata_strips_nul_padding_and_reads_plain_datetime(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Padded\x00\x00  "
    exif[ExifTags.Base.DateTime] = "2020:01:02 03:04:05"
    source = save(Image.new("RGB", (8, 8)), tmp_path / "pad.jpg", "JPEG", exif=exif.tobytes())
    meta = extract_metadata(source, MAX_PIXELS)
    assert meta["camera_make"] == "Padded"
    assert meta["capture_time"] == "2020-01-02T03:04:05"


@pytest.mark.parametrize(
    ("name", "fmt", "mode", "frames"),
    [
        ("camera_rotated.jpg", "jpeg", "RGB", 1),
        ("logo_alpha.png", "png", "RGBA", 1),
        ("print_cmyk.jpg", "jpeg", "CMYK", 1),
        ("animation.gif", "gif", "P", 3),
        ("scan_16bit.tif", "tiff", "I;16", 1),
        ("web.webp", "webp", "RGB", 1),
        ("wrong_extension.png", "jpeg", "RGB", 1),
    ],
)
def test_probe_reads_the_header(
    samples: dict[str, Path], name: str, fmt: str, mode: str, frames: int
) -> None:
    probe = probe_image(samples[name], MAX_PIXELS)
    assert (probe.format, probe.mode, probe.frames) == (fmt, mode, frames)
    assert probe.width > 0 and probe.height > 0


# --- the sample writer ----------------------------------------------------------------------------


def test_sample_writer_produces_the_whole_set(samples: dict[str, Path]) -> None:
    assert set(samples) == {
        "camera_rotated.jpg", "logo_alpha.png", "print_cmyk.jpg", "animation.gif",
        "scan_16bit.tif", "web.webp", "wrong_extension.png", "broken.jpg", "empty.jpg",
        "notes.txt",
    }
    assert samples["wrong_extension.png"].read_bytes()[:3] == b"\xff\xd8\xff", "really a JPEG"
    assert samples["empty.jpg"].stat().st_size == 0
    with Image.open(samples["logo_alpha.png"]) as logo:
        alpha = logo.getchannel("A").getextrema()
        assert alpha[0] == 0 and alpha[1] == 255, "real transparency"


def test_every_good_sample_renders(tmp_path: Path, samples: dict[str, Path]) -> None:
    bad = {"broken.jpg", "empty.jpg", "notes.txt"}
    for name, path in samples.items():
        if name in bad:
            continue
        probe = probe_image(path, MAX_PIXELS)
        rendered = render_derivatives(path, [THUMB, PREVIEW], tmp_path / name, MAX_PIXELS)
        assert set(rendered) == {"thumbnail", "preview"}, name
        source_long = max(probe.width, probe.height)
        preview, thumbnail = rendered["preview"], rendered["thumbnail"]
        assert max(preview.width, preview.height) == source_long, name
        assert max(thumbnail.width, thumbnail.height) == min(250, source_long), name


def test_sample_writer_command_line(tmp_path: Path) -> None:
    from media_assets.samples import main

    main([str(tmp_path / "cli"), "--width", "64", "--height", "48"])
    assert len(list((tmp_path / "cli").iterdir())) == 10 + 1  # the av/ folder


def test_images_module_stays_pure() -> None:
    for module in (images, image_render):
        source = Path(module.__file__).read_text()
        assert not re.search(r"^\s*(import|from)\s+dagster", source, re.MULTILINE)
    assert write_sample_images.__module__ == "media_assets.samples.images"
