"""An audio resampler that follows a stream whose sample format, layout or rate changes
mid-stream (concatenated files, broadcast captures, a hostile file): PyAV's own refuses any
frame unlike the first. No Dagster."""

from __future__ import annotations

from typing import Any

import av


class FollowingResampler:
    """Like `av.AudioResampler(**target)`, re-created (after flushing) whenever the input
    frames change format, layout or rate."""

    def __init__(self, **target: Any) -> None:
        self.target = target
        self._inner: av.AudioResampler | None = None
        self._source: tuple | None = None

    def resample(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        source = (frame.format.name, frame.layout.name, frame.sample_rate)
        flushed: list[av.AudioFrame] = []
        inner = self._inner
        if inner is None or source != self._source:
            if inner is not None:
                flushed = list(inner.resample(None))
            inner = self._inner = av.AudioResampler(**self.target)
            self._source = source
        return flushed + list(inner.resample(frame))
