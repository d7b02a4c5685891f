"""Synthesise sample videos and audio (and a few broken ones) with PyAV and numpy.

No network and no ffmpeg binary: every codec comes from the PyAV wheel. Used by `make dev`,
the tests and the benchmarks.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import OutputContainer
from av.stream import Disposition
from PIL import Image

CHANNELS = {"mono": 1, "stereo": 2, "5.1": 6}
LIVE_PHOTO_KEY = "com.apple.quicktime.content.identifier"


def _frame(index: int, count: int, size: tuple[int, int]) -> np.ndarray:
    """A dark lead-in (the first 5 %), then a gradient that moves, with a red top-left corner
    so a test can tell which way a frame was turned."""
    width, height = size
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    if index >= count * 0.05:
        ramp = np.linspace(40, 220, width, dtype=np.float32)
        pixels[:, :, 2] = np.roll(ramp, index * 3).astype(np.uint8)
        pixels[:, :, 1] = 90
        pixels[: height // 2, : width // 2] = (230, 20, 20)
    return pixels


def _yuv_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """RGB to 4:2:0 YUV (BT.601) in numpy, written into the frame's planes. FFmpeg's
    swscale conversion depends on the buffer's alignment (its SIMD paths), which made the
    samples' bytes differ from run to run; this does not. `yuvj420p` is full range."""
    height, width = rgb.shape[:2]
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    if pix_fmt != "yuvj420p":  # limited range
        y, u, v = 16 + y * 219 / 255, 128 + (u - 128) * 224 / 255, 128 + (v - 128) * 224 / 255
    even = (height + height % 2, width + width % 2)

    def half(plane: np.ndarray) -> np.ndarray:
        padded = np.pad(plane, ((0, even[0] - height), (0, even[1] - width)), mode="edge")
        return padded.reshape(even[0] // 2, 2, even[1] // 2, 2).mean(axis=(1, 3))

    frame = av.VideoFrame(width, height, pix_fmt)
    for plane, values in zip(frame.planes, (y, half(u), half(v)), strict=True):
        rows = np.zeros((plane.height, plane.line_size), dtype=np.uint8)
        rows[:, :values.shape[1]] = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        plane.update(rows.tobytes())
    return frame


def _tone(start: int, samples: int, rate: int, channels: int, hz: float = 440.0) -> np.ndarray:
    t = (np.arange(samples) + start) / rate
    wave = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([wave] * channels)


def _encode_audio(out: OutputContainer, stream: av.AudioStream, seconds: float,
                  rate: int, layout: str) -> None:
    fmt = stream.codec_context.format
    frame_size = stream.codec_context.frame_size or 1024
    total = int(seconds * rate)
    for start in range(0, total, frame_size):
        samples = min(frame_size, total - start)
        frame = av.AudioFrame.from_ndarray(_tone(start, samples, rate, CHANNELS[layout]),
                                           format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        if fmt.name != "fltp":
            frame = _convert(frame, fmt.name, layout, rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode())


def _convert(frame: av.AudioFrame, fmt: str, layout: str, rate: int) -> av.AudioFrame:
    [converted] = av.AudioResampler(format=fmt, layout=layout, rate=rate).resample(frame)
    converted.pts, converted.time_base = frame.pts, frame.time_base
    return converted


# Muxers write no random ids (Matroska's segment UID, Ogg's stream serial) and no dates or
# library versions: the same sample comes out byte for byte the same every time.
BITEXACT = {"fflags": "+bitexact"}
# ...and encoders leave out their version strings and take no timing-dependent choices (the
# AAC encoder's output varied from run to run without it, under load)
CODEC_BITEXACT = {"flags": "+bitexact"}


def write_video(path: Path, *, codec: str = "libx264", seconds: float = 1.0, fps: int = 10,
                size: tuple[int, int] = (64, 48), audio: str | None = "stereo",
                audio_codec: str = "aac", rotation: int | None = None, gop: int | None = None,
                tags: Mapping[str, str] | None = None, format: str | None = None,
                faststart: bool = False) -> Path:
    """A synthetic clip. `rotation` is the display matrix angle as FFmpeg counts it
    (counter-clockwise; a portrait phone clip carries -90). `faststart` puts the MP4 index
    first, as web-ready files have it."""
    flags = ["use_metadata_tags"] * bool(tags) + ["faststart"] * faststart
    options = {**BITEXACT, **({"movflags": "+".join(flags)} if flags else {})}
    with av.open(str(path), "w", format=format, options=options) as out:
        out.metadata.update(tags or {})
        # one encoder thread: threaded encoders may order their work by timing, and the
        # samples must be the same bytes every time (make dev drops them once per store)
        video = out.add_stream(codec, rate=fps, options={
            "threads": "1", **CODEC_BITEXACT, **({"g": str(gop)} if gop else {}),
            # x265 reports its own choices ("disabling lookahead-slices") as warnings
            **({"x265-params": "log-level=error"} if codec == "libx265" else {})})
        assert isinstance(video, av.VideoStream)  # a video codec's stream
        video.width, video.height = size
        video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = None
        if audio:
            rate = 48_000
            sound = out.add_stream(audio_codec, rate=rate, layout=audio,
                                   options=CODEC_BITEXACT)
            assert isinstance(sound, av.AudioStream)
        count = max(1, int(seconds * fps))
        for index in range(count):
            frame = _yuv_frame(_frame(index, count, size), video.pix_fmt)
            frame.pts, frame.time_base = index, Fraction(1, fps)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if sound is not None and audio:
            _encode_audio(out, sound, seconds, 48_000, audio)
    return Path(path)


def write_audio(path: Path, codec: str, *, layout: str = "stereo", rate: int = 44_100,
                seconds: float = 1.0, tags: Mapping[str, str] | None = None,
                cover: Image.Image | None = None, format: str | None = None) -> Path:
    """A synthetic tone; `cover` embeds an attached picture (MP3 / M4A cover art)."""
    with av.open(str(path), "w", format=format, options=BITEXACT) as out:
        out.metadata.update(tags or {})
        stream = out.add_stream(codec, rate=rate, layout=layout, options=CODEC_BITEXACT)
        assert isinstance(stream, av.AudioStream)  # an audio codec's stream
        if cover is not None:
            _attach_cover(out, cover)
        _encode_audio(out, stream, seconds, rate, layout)
    return Path(path)


def _attach_cover(out: OutputContainer, cover: Image.Image) -> None:
    buffer = io.BytesIO()
    cover.convert("RGB").save(buffer, "JPEG", quality=85)
    stream = out.add_stream("mjpeg")
    stream.width, stream.height = cover.size
    stream.pix_fmt = "yuvj420p"
    stream.disposition = Disposition.attached_pic
    packet = av.Packet(buffer.getvalue())
    packet.stream, packet.pts, packet.dts = stream, 0, 0
    out.mux(packet)


def write_header_only_wav(path: Path, *, rate: int = 8000) -> Path:
    """A 44-byte WAV whose header promises a second of audio but holds no samples."""
    data_bytes = rate * 2
    header = (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
              + b"data" + struct.pack("<I", data_bytes))
    Path(path).write_bytes(header)
    return Path(path)


def write_sample_av(dest: Path, *, size: tuple[int, int] = (320, 240),
                    seconds: float = 2.0) -> list[Path]:
    """Videos and audio in the formats people upload, plus four broken files."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    width, height = size
    small = (width // 2 // 2 * 2, height // 2 // 2 * 2)
    cover = Image.new("RGB", (120, 120), (200, 40, 40))
    made = [
        write_video(dest / "clip_h264.mp4", seconds=seconds, size=size, fps=25, faststart=True),
        write_video(dest / "phone_portrait.mov", seconds=seconds, size=size, fps=60,
                    audio="mono", rotation=-90, format="mov"),
        write_video(dest / "clip_vp9.webm", codec="libvpx-vp9", seconds=seconds, size=small,
                    audio="stereo", audio_codec="libopus"),
        write_video(dest / "clip_mpeg4_odd.avi", codec="mpeg4", seconds=seconds,
                    size=(small[0] + 1, small[1] + 1), audio=None),
        write_video(dest / "clip_mjpeg.mov", codec="mjpeg", seconds=seconds, size=small,
                    audio=None, format="mov"),
        write_audio(dest / "song_cover.mp3", "libmp3lame", seconds=seconds, cover=cover,
                    tags={"title": "Sample song", "artist": "media_assets",
                          "album": "Samples"}),
        write_audio(dest / "voice_mono.wav", "pcm_s16le", layout="mono", rate=16_000,
                    seconds=seconds),
        write_audio(dest / "music.flac", "flac", seconds=seconds),
        write_audio(dest / "speech.opus", "libopus", rate=48_000, seconds=seconds,
                    format="ogg"),
        write_audio(dest / "surround_51.m4a", "aac", layout="5.1", rate=48_000,
                    seconds=seconds, format="ipod"),
        write_audio(dest / "audio_only.mp4", "aac", rate=48_000, seconds=seconds,
                    format="mp4"),
    ]
    if "libx265" in av.codecs_available:
        made.append(write_video(dest / "clip_hevc.mp4", codec="libx265", seconds=seconds,
                                size=small, audio=None))
    whole = write_video(dest / "truncated.mp4", seconds=seconds, size=size)
    whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])  # moov is at the end
    (dest / "empty.mov").write_bytes(b"")
    (dest / "garbage.mp4").write_bytes(b"definitely not a video\n" * 200)
    made += [whole, dest / "empty.mov", dest / "garbage.mp4",
             write_header_only_wav(dest / "header_only.wav")]
    return made


def write_live_photo(dest: Path, stem: str, content_identifier: str,
                     size: tuple[int, int] = (320, 240)) -> tuple[Path, Path]:
    """A live photo as an iPhone exports it: a JPEG still whose Apple MakerNote and a short
    MOV whose metadata carry the same content identifier."""
    from media_assets.codec.apple import apple_maker_note
    from media_assets.samples.images import synth_photo

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x010F] = "Apple"  # Make
    exif.get_ifd(0x8769)[0x927C] = apple_maker_note(content_identifier)  # Exif IFD MakerNote
    still = dest / f"{stem}.jpg"
    synth_photo(size, seed=7).save(still, "JPEG", quality=85, exif=exif)
    movie = write_video(dest / f"{stem}.mov", seconds=1.5, size=size, fps=30, format="mov",
                        tags={LIVE_PHOTO_KEY: content_identifier})
    return still, movie


XMP_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/" xmp:Rating="{rating}">
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li></rdf:Alt></dc:title>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def write_xmp_sidecar(path: Path, *, title: str = "Sample", rating: int = 4) -> Path:
    """An XMP sidecar as Lightroom or darktable writes one next to an image."""
    Path(path).write_text(XMP_SIDECAR.format(title=title, rating=rating), encoding="utf-8")
    return Path(path)
