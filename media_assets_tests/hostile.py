"""The hostile-input set, generated (nothing comes from the network): truncated files of every
supported type, headers declaring absurd sizes, zero bytes, polyglots, hostile metadata
blocks, an MP4 with a billion-entry sample table, a WAV declaring a terabyte.

`write_hostile_set(dest)` writes them and returns {file name: the quarantine reason expected};
`write_good_set(dest)` writes small valid files of every supported type, which the truncated
ones are cut from. Also used as the fuzzers' seed corpus (`fuzz/`).
"""

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from media_assets.codec.images import register_plugins
from media_assets.samples.av import write_audio, write_video, write_xmp_sidecar

# name -> writer of a small valid file of that type
GOOD_TYPES: dict[str, Callable[[Path], object]] = {}


def _image_writer(fmt: str, **params: object) -> Callable[[Path], object]:
    def write(path: Path) -> None:
        register_plugins()
        image = Image.new("RGB", (48, 32), (30, 120, 200))
        for x in range(0, 48, 4):
            for y in range(0, 32, 4):
                image.putpixel((x, y), (x * 5 % 255, y * 7 % 255, 90))
        image.save(path, fmt, **params)
    return write


GOOD_TYPES.update({
    "good.jpg": _image_writer("JPEG", quality=90),
    "good.png": _image_writer("PNG"),
    "good.webp": _image_writer("WEBP", quality=80),
    "good.gif": _image_writer("GIF"),
    "good.tif": _image_writer("TIFF", compression="tiff_deflate"),
    "good.bmp": _image_writer("BMP"),
    "good.heic": _image_writer("HEIF", quality=80),
    "good.avif": _image_writer("AVIF", quality=60),
    "good.mp4": lambda p: write_video(p, seconds=1.0, size=(64, 48), faststart=True),
    "good.mov": lambda p: write_video(p, seconds=1.0, size=(64, 48), format="mov"),
    "good.webm": lambda p: write_video(p, codec="libvpx-vp9", seconds=1.0, size=(64, 48),
                                       audio_codec="libopus"),
    "good.mkv": lambda p: write_video(p, seconds=1.0, size=(64, 48), format="matroska"),
    "good.avi": lambda p: write_video(p, codec="mpeg4", seconds=1.0, size=(64, 48),
                                      audio=None),
    "good.mp3": lambda p: write_audio(p, "libmp3lame", seconds=1.0),
    "good.m4a": lambda p: write_audio(p, "aac", rate=48_000, seconds=1.0, format="ipod"),
    "good.ogg": lambda p: write_audio(p, "libopus", rate=48_000, seconds=1.0, format="ogg"),
    "good.flac": lambda p: write_audio(p, "flac", seconds=1.0),
    "good.wav": lambda p: write_audio(p, "pcm_s16le", layout="mono", rate=16_000,
                                      seconds=1.0),
    "good.aac": lambda p: write_audio(p, "aac", rate=48_000, seconds=1.0, format="adts"),
    "good.xmp": lambda p: write_xmp_sidecar(p),
})


def write_good_set(dest: Path) -> dict[str, Path]:
    """One small valid file of every supported type."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, writer in GOOD_TYPES.items():
        writer(dest / name)
        written[name] = dest / name
    return written


# --------------------------------------------------------------------------------------------
# Hostile constructions


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose IHDR (CRC correct) declares width x height over a 1-pixel body."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00")) + _chunk(b"IEND", b""))


def bmp_declaring(width: int, height: int) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    body = b"\x00" * 64
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(body), 0, 0, 54) + header + body


def tiff_declaring(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1),
               (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height),
               (279, 4, 1, width * height & 0xFFFFFFFF)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", tag, typ, count, value) if typ == 4
        else struct.pack("<HHIHH", tag, typ, count, value, 0) for tag, typ, count, value in entries
    ) + b"\x00\x00\x00\x00"
    return b"II*\x00" + struct.pack("<I", 8 + 16) + b"\x00" * 16 + ifd


def jpeg_declaring(width: int, height: int) -> bytes:
    """A JPEG whose SOF0 declares width x height (at most 65535 each)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_with_frames(frames: int) -> bytes:
    """A 1x1 GIF with `frames` tiny frames: a frame-count bomb at a few bytes a frame."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = (b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms
             b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00")
    return head + frame * frames + b"\x3b"


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload/readme.html", "<script>alert(1)</script>")
    return buffer.getvalue()


def _tiff_ifd_chain(depth: int) -> bytes:
    """EXIF (TIFF) whose IFD0 points to an Exif IFD, which points to another, `depth` deep,
    the last one pointing back to IFD0: deeply nested and looping."""
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for level in range(depth):
        offset = 8 + level * 18
        target = offset + 18 if level + 1 < depth else 8
        out += struct.pack("<H", 1) + struct.pack("<HHII", 0x8769, 4, 1, target)
        out += struct.pack("<I", 0)
    return bytes(out)


def jpeg_with_app(segments: list[tuple[int, bytes]]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buffer, "JPEG")
    data = buffer.getvalue()
    extra = b"".join(bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body
                     for marker, body in segments)
    return data[:2] + extra + data[2:]


def jpeg_nested_exif(depth: int = 2000) -> bytes:
    body = b"Exif\x00\x00" + _tiff_ifd_chain(depth)
    return jpeg_with_app([(0xE1, body[:65000])])


def jpeg_huge_icc(chunks: int = 200) -> bytes:
    """An ICC profile split over `chunks` APP2 segments (~12.8 MB): the JPEG maximum."""
    piece = b"\x00" * 64000
    return jpeg_with_app([(0xE2, b"ICC_PROFILE\x00" + bytes([i + 1, chunks]) + piece)
                          for i in range(chunks)])


def png_huge_exif(size: int = 8 * 1024 * 1024) -> bytes:
    """A valid PNG carrying an 8 MiB eXIf chunk (EXIF that loops back on itself, padded)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, "PNG")
    data = buffer.getvalue()
    exif = _tiff_ifd_chain(50)
    exif += b"\x00" * (size - len(exif))
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + _chunk(b"eXIf", exif) + data[iend:]


def png_icc_zlib_bomb() -> bytes:
    """A PNG whose iCCP chunk inflates from ~100 KB to 100 MB."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "PNG")
    data = buffer.getvalue()
    bomb = zlib.compress(b"\x00" * (100 * 1024 * 1024), 9)
    at = data.index(b"IDAT") - 4
    return data[:at] + _chunk(b"iCCP", b"bomb\x00\x00" + bomb) + data[at:]


def _boxes(data: bytes, start: int, end: int):
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        if size < 8:
            return
        yield at, size, kind
        at += size


def mp4_billion_samples(valid: bytes) -> bytes:
    """A valid MP4 whose video stsz (sample sizes) declares 1,000,000,000 entries."""
    data = bytearray(valid)
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}

    def patch(start: int, end: int) -> bool:
        for at, size, kind in _boxes(bytes(data), start, end):
            if kind in containers and patch(at + 8, at + size):
                return True
            if kind == b"stsz":
                data[at + 16:at + 20] = struct.pack(">I", 1_000_000_000)
                return True
        return False

    assert patch(0, len(data)), "no stsz box"
    return bytes(data)


def wav_declaring(data_bytes: int, *, rf64: bool = False) -> bytes:
    """A WAV (or, past 4 GiB, an RF64 WAV) whose data chunk declares `data_bytes` bytes of
    16-bit mono 48 kHz audio over one second of real samples."""
    samples = b"\x00\x10" * 48_000
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 48_000, 96_000, 2, 16)
    if not rf64:
        return (b"RIFF" + struct.pack("<I", min(0xFFFFFFFF, 36 + data_bytes)) + b"WAVE" + fmt
                + b"data" + struct.pack("<I", min(0xFFFFFFFF, data_bytes)) + samples)
    ds64 = b"ds64" + struct.pack("<IQQQI", 28, 36 + data_bytes, data_bytes,
                                 data_bytes // 2, 0)
    return (b"RF64" + b"\xff\xff\xff\xff" + b"WAVE" + ds64 + fmt + b"data" + b"\xff\xff\xff\xff"
            + samples)


def xmp_nested(depth: int = 200_000) -> bytes:
    return b'<?xpacket begin=""?><x:xmpmeta xmlns:x="adobe:ns:meta/">' + b"<a>" * depth


def xmp_billion_laughs() -> bytes:
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">'
                       for i in range(10))
    return (f'<?xml version="1.0"?><?xpacket begin=""?><!DOCTYPE x:xmpmeta [{entities}]>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/">&l9;</x:xmpmeta>').encode()


# The hostile set: file name -> expected quarantine reason. Truncated files come first.
TRUNCATED_REASON = "truncated"
OTHER_EXPECTED = {
    "zero_bytes.jpg": "empty",
    "zero_bytes.mp4": "empty",
    "huge_100k_x_100k.png": "too_many_pixels",
    "huge_100k_x_100k.bmp": "too_many_pixels",
    "huge_100k_x_100k.tif": "too_many_pixels",
    "huge_65k_x_65k.jpg": "too_many_pixels",
    "frame_bomb.gif": "too_many_frames",
    "polyglot_jpeg_zip.jpg": "polyglot",
    "polyglot_png_zip.png": "polyglot",
    "polyglot_mp4_zip.mp4": "polyglot",
    "exif_nested_loop.jpg": "hostile_metadata",
    "icc_12mb.jpg": "hostile_metadata",
    "exif_8mb.png": "hostile_metadata",
    "icc_zlib_bomb.png": "hostile_metadata",
    "stsz_billion.mp4": "too_many_frames",
    "wav_4gib_declared.wav": "too_large",
    "wav_terabyte_rf64.wav": "too_large",
    "xmp_nested.xmp": "hostile_metadata",
    "xmp_billion_laughs.xmp": "hostile_metadata",
}


def write_hostile_set(dest: Path, good: dict[str, Path] | None = None) -> dict[str, str]:
    """Write every hostile file into `dest`; returns {name: expected quarantine reason}."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if good is None:
        good = write_good_set(dest / ".good")
    expected: dict[str, str] = {}
    for name, path in good.items():
        data = path.read_bytes()
        target = f"truncated{Path(name).suffix}"
        (dest / target).write_bytes(data[: len(data) // 2])
        expected[target] = TRUNCATED_REASON
    made = {
        "zero_bytes.jpg": b"",
        "zero_bytes.mp4": b"",
        "huge_100k_x_100k.png": png_declaring(100_000, 100_000),
        "huge_100k_x_100k.bmp": bmp_declaring(100_000, 100_000),
        "huge_100k_x_100k.tif": tiff_declaring(100_000, 100_000),
        "huge_65k_x_65k.jpg": jpeg_declaring(65_000, 65_000),
        "frame_bomb.gif": gif_with_frames(50_000),
        "polyglot_jpeg_zip.jpg": good["good.jpg"].read_bytes() + zip_bytes(),
        "polyglot_png_zip.png": good["good.png"].read_bytes() + zip_bytes(),
        "polyglot_mp4_zip.mp4": good["good.mp4"].read_bytes() + zip_bytes(),
        "exif_nested_loop.jpg": jpeg_nested_exif(),
        "icc_12mb.jpg": jpeg_huge_icc(),
        "exif_8mb.png": png_huge_exif(),
        "icc_zlib_bomb.png": png_icc_zlib_bomb(),
        "stsz_billion.mp4": mp4_billion_samples(good["good.mp4"].read_bytes()),
        "wav_4gib_declared.wav": wav_declaring(0xFFFFFF00),
        "wav_terabyte_rf64.wav": wav_declaring(1 << 40, rf64=True),
        "xmp_nested.xmp": xmp_nested(),
        "xmp_billion_laughs.xmp": xmp_billion_laughs(),
    }
    for name, data in made.items():
        (dest / name).write_bytes(data)
    expected.update(OTHER_EXPECTED)
    assert set(expected) == {n for n in expected if (dest / n).exists()}
    return expected

