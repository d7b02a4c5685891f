"""Waveforms: a fixed number of buckets, true peaks, streamed with bounded memory."""

from fractions import Fraction

import av
import numpy as np
import pytest

from media_assets.codec.waveform import envelope_image, peak_envelope
from media_assets.core.errors import Rejected


def loud_then_silent(path, seconds=4, rate=8000, amplitude=0.5):
    """A 440 Hz tone for the first half, silence for the second half (WAV)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        total = seconds * rate
        t = np.arange(total) / rate
        wave = np.where(t < seconds / 2, amplitude * np.sin(2 * np.pi * 440 * t), 0.0)
        pcm = (wave * 32767).astype(np.int16)
        for start in range(0, total, 1000):
            frame = av.AudioFrame.from_ndarray(pcm[start:start + 1000].reshape(1, -1),
                                               format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def test_the_envelope_has_the_requested_buckets_and_true_peaks(tmp_path):
    envelope = peak_envelope(loud_then_silent(tmp_path / "tone.wav"), buckets=100)
    assert envelope["buckets"] == 100 and len(envelope["min"]) == len(envelope["max"]) == 100
    assert 0.45 < max(envelope["max"][:45]) <= 0.51
    assert -0.51 <= min(envelope["min"][:45]) < -0.45
    assert max(abs(v) for v in envelope["max"][55:] + envelope["min"][55:]) < 0.01


def test_the_envelope_picture_is_drawn(tmp_path):
    envelope = peak_envelope(loud_then_silent(tmp_path / "tone.wav"), buckets=200)
    image = envelope_image(envelope, size=(200, 60))
    assert image.size == (200, 60)
    assert image.getpixel((20, 30)) != (255, 255, 255)  # the loud half is drawn


def test_a_header_only_wav_is_rejected(tmp_path):
    whole = loud_then_silent(tmp_path / "tone.wav").read_bytes()
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(whole[:44])
    with pytest.raises(Rejected):
        peak_envelope(header_only)
