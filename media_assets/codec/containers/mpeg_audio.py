"""MPEG audio (MP1/MP2/MP3) frame headers: enough to walk frames and to find the first one
behind padding or junk, as decoders do. Pure, no decoding."""

from __future__ import annotations

BITRATES = {
    (1, 1): [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    (1, 2): [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    (1, 3): [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    (2, 1): [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    (2, 2): [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
RATES = {3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000]}


def frame_length(header: int) -> int | None:
    if header >> 21 != 0x7FF:
        return None
    version_bits, layer_bits = (header >> 19) & 3, (header >> 17) & 3
    bitrate_index, rate_index = (header >> 12) & 15, (header >> 10) & 3
    if version_bits == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    version, layer = (1 if version_bits == 3 else 2), 4 - layer_bits
    bitrate = BITRATES[(version, layer if version == 1 else min(layer, 2))][bitrate_index]
    rate = RATES[version_bits][rate_index]
    padding = (header >> 9) & 1
    if layer == 1:
        return (12 * bitrate * 1000 // rate + padding) * 4
    per_frame = 144 if version == 1 or layer != 3 else 72
    return per_frame * bitrate * 1000 // rate + padding


STREAM_BITS = 0x001E0C00  # version, layer and sample rate: the same in every frame


def first_frame(data: bytes, limit: int = 65536, frames: int = 3) -> int | None:
    """Where the first of `frames` consecutive valid frame headers of one stream (same
    version, layer and sample rate) starts, within `limit` bytes: decoders resync the same
    way over padding or junk before the audio; three in a row make a chance match in other
    binary data very unlikely."""
    at = data.find(b"\xff", 0, limit)
    while at >= 0 and at + 4 <= len(data):
        if _run_of_frames(data, at, frames):
            return at
        at = data.find(b"\xff", at + 1, limit)
    return None


def _run_of_frames(data: bytes, at: int, frames: int) -> bool:
    first = int.from_bytes(data[at:at + 4], "big")
    for _ in range(frames):
        if at + 4 > len(data):
            return False
        header = int.from_bytes(data[at:at + 4], "big")
        length = frame_length(header)
        if length is None or header & STREAM_BITS != first & STREAM_BITS:
            return False
        at += length
    return True
