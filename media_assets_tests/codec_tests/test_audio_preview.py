"""Audio previews: the first N seconds, AAC at 48 kHz stereo whatever the source."""

import av
import pytest

from media_assets.codec.audio_preview import render_audio_preview
from media_assets.codec.av_probe import probe_av
from media_assets.core.errors import Rejected
from media_assets.samples.av import write_audio as write_tone
from media_assets_tests.codec_tests.test_av_probe import write_audio
from media_assets_tests.codec_tests.test_waveform import loud_then_silent


@pytest.mark.parametrize(("codec", "suffix", "layout", "rate"), [
    ("pcm_s16le", "wav", "mono", 44_100), ("flac", "flac", "5.1", 96_000),
])
def test_any_source_becomes_48k_stereo_aac(tmp_path, codec, suffix, layout, rate):
    source = write_audio(tmp_path / f"in.{suffix}", codec, layout, rate)
    written = render_audio_preview(source, tmp_path / "preview.m4a", seconds=30)
    info = probe_av(tmp_path / "preview.m4a")
    [audio] = info["audio"]
    assert (audio["codec"], audio["channels"], audio["sample_rate"]) == ("aac", 2, 48_000)
    assert written == pytest.approx(probe_av(source)["duration_seconds"], abs=0.05)


def test_only_the_first_seconds_are_kept(tmp_path):
    source = loud_then_silent(tmp_path / "tone.wav", seconds=10)
    assert render_audio_preview(source, tmp_path / "p.m4a", seconds=3) == pytest.approx(3.0)
    assert probe_av(tmp_path / "p.m4a")["duration_seconds"] == pytest.approx(3.0, abs=0.1)


def test_a_file_without_audio_is_rejected(tmp_path):
    junk = tmp_path / "junk.m4a"
    junk.write_bytes(b"\x00" * 500)
    with pytest.raises(Rejected):
        render_audio_preview(junk, tmp_path / "p.m4a")
    assert not (tmp_path / "p.m4a").exists()


ENCODINGS = [("libmp3lame", "mp3", None), ("aac", "m4a", "ipod"), ("libopus", "opus", "ogg"),
             ("libvorbis", "ogg", "ogg"), ("flac", "flac", None), ("pcm_s16le", "wav", None),
             ("eac3", "mp4", "mp4"), ("libopus", "webm", "webm")]


@pytest.mark.parametrize("layout", ["mono", "stereo"])
@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
@pytest.mark.parametrize(("codec", "ext", "container"), ENCODINGS)
def test_a_preview_lasts_as_long_as_its_source_or_the_spec(tmp_path, codec, ext, container,
                                                           rate, layout):
    """Within a frame of min(source, preview seconds), whatever the source's codec,
    container, rate and layout (a 48 kHz MP3 and Opus in WebM used to go wrong)."""
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    if codec == "libopus" and rate in (22_050, 44_100) or codec == "eac3" and rate < 32_000:
        pytest.skip(f"{codec} does not encode at {rate} Hz")
    source = write_tone(tmp_path / f"tone.{ext}", codec, layout=layout, rate=rate,
                        seconds=1.5, format=container)
    for seconds, expected in ((30.0, 1.5), (1.0, 1.0)):
        out = tmp_path / f"preview-{seconds}.m4a"
        render_audio_preview(source, out, seconds=seconds)
        with av.open(str(out)) as preview:
            assert preview.duration is not None
            # one frame of the source (an AAC source decodes with its priming samples) and
            # one of the preview
            frame = 1024 / rate + 1024 / 48_000 + 0.005
            assert abs(preview.duration / 1e6 - expected) <= frame, (
                codec, rate, layout, preview.duration / 1e6)
