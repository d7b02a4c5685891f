"""Audio previews: the first N seconds, AAC at 48 kHz stereo whatever the source."""

import pytest

from media_assets.codec.audio_preview import render_audio_preview
from media_assets.codec.av_probe import probe_av
from media_assets.core.errors import Rejected
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
