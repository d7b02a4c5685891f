"""Poster frames: a representative frame (not the black first one), upright, thumbnail-sized."""

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image, ImageStat

from media_assets.codec.poster import poster_frame, render_poster
from media_assets.core.errors import Rejected
from media_assets.core.policy import Policy


def fade_in_clip(path, *, rotation=None, seconds=4, fps=10, gop=5, size=(96, 64)):
    """Black for the first 5 % of the clip, then a bright frame with a red top-left corner."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"g": str(gop)})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(seconds * fps):
            pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            if i >= seconds * fps * 0.05:
                pixels[:] = (40, 40, 220)
                pixels[: size[1] // 2, : size[0] // 2] = (230, 20, 20)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_the_poster_is_a_representative_frame_not_the_black_start(tmp_path):
    image = poster_frame(fade_in_clip(tmp_path / "clip.mp4"))
    assert image.size == (96, 64)
    assert ImageStat.Stat(image).mean[2] > 100  # bright, not the black opening frames
    red, _, blue = image.getpixel((10, 10))
    assert red > 150 and blue < 100  # the red corner is top-left: upright


@pytest.mark.parametrize(("matrix_degrees", "red_corner"), [
    (-90, "top-right"),  # a portrait phone clip: turned 90 degrees clockwise, like FFmpeg does
    (90, "bottom-left"),
    (180, "bottom-right"),
])
def test_the_poster_is_turned_as_the_display_matrix_says(tmp_path, matrix_degrees, red_corner):
    """The stored frames have their red corner top-left; the display matrix says how to turn
    them (FFmpeg counts degrees counter-clockwise)."""
    image = poster_frame(fade_in_clip(tmp_path / "phone.mp4", rotation=matrix_degrees))
    assert image.size == ((96, 64) if matrix_degrees == 180 else (64, 96))
    w, h = image.size
    corners = {"top-left": (5, 5), "top-right": (w - 5, 5), "bottom-left": (5, h - 5),
               "bottom-right": (w - 5, h - 5)}
    assert [name for name, xy in corners.items() if image.getpixel(xy)[0] > 150] == [red_corner]


def test_the_poster_is_written_with_the_thumbnail_spec(tmp_path):
    spec = Policy().derivative("thumbnail")
    rendered = render_poster(fade_in_clip(tmp_path / "clip.mp4", size=(640, 360)), [spec],
                             tmp_path / "out")
    with Image.open(rendered["thumbnail"].path) as im:
        assert im.format == "WEBP" and max(im.size) == 250


def test_a_file_without_video_is_rejected(tmp_path):
    garbage = tmp_path / "x.mp4"
    garbage.write_bytes(b"not a video" * 50)
    with pytest.raises(Rejected):
        poster_frame(garbage)


@pytest.mark.parametrize(("codec", "suffix"), [("libx264", "mp4"), ("libvpx-vp9", "webm"),
                                               ("mpeg4", "avi")])
def test_the_poster_is_found_by_seeking_not_by_decoding_a_run_of_frames(tmp_path, codec,
                                                                        suffix):
    """A forward seek lands on the first keyframe after the target: one frame decoded."""
    from media_assets.codec.poster import _keyframe_after
    from media_assets.samples.av import write_video

    clip = write_video(tmp_path / f"clip.{suffix}", codec=codec, seconds=4, fps=10, gop=7,
                       audio=None)
    with av.open(str(clip)) as container:
        frame = _keyframe_after(container, container.streams.video[0], 0.4)
        assert frame.key_frame and 0.4 <= frame.time <= 1.5
