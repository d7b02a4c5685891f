"""Adaptive batching, as a pure function of what the inbox holds and the time.

A lane's batch closes when it is full (files, bytes, or estimated work: `estimate_seconds`)
or when its oldest file has waited `max_wait_seconds`: a lone file goes within seconds, a
flood goes in batches of about `target_batch_seconds` of work each, so a run's fixed cost
(4-6 s under `dagster dev`) stays within 5 % of its time whatever the files weigh. Under a
steady trickle a daily partition budget stretches the wait (never past the freshness target),
so partitions grow with bursts of work, not with files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import NamedTuple

from media_assets.codec.cheap_probe import CheapFacts, ReadRange, cheap_probe
from media_assets.codec.sniff import Sniffed, declared_pixels, sniff
from media_assets.core.policy import Batching, Policy

LANES = ("image", "av", "heavy")


@dataclass(frozen=True)
class Candidate:
    """A settled, unclaimed inbox file with the lane its header put it in."""

    name: str
    size: int
    mtime: float
    lane: str
    why: str = ""  # why it went heavy, e.g. "duration: 3600 s >= 1800 s"
    seconds: float = 0.0  # estimated work: CPU-seconds of one core here (`estimate_seconds`)


@dataclass(frozen=True)
class PlannedBatch:
    lane: str
    files: tuple[Candidate, ...]
    closed_because: str  # "full" | "waited" | "waited (over budget)"

    @property
    def size(self) -> int:
        return sum(c.size for c in self.files)

    @property
    def estimated_seconds(self) -> float:
        return sum(c.seconds for c in self.files)


@dataclass
class BudgetState:
    """The only state the sensor keeps between ticks: today's batch count (a tiny cursor)."""

    day: str = ""
    batches: int = 0  # every batch today (numbers the batch keys)
    partial: int = 0  # batches closed before they were full: what the budget paces

    @classmethod
    def from_cursor(cls, cursor: str | None) -> BudgetState:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(day=data.get("day", ""), batches=int(data.get("batches", 0)),
                   partial=int(data.get("partial", 0)))

    def to_cursor(self) -> str:
        return json.dumps({"day": self.day, "batches": self.batches, "partial": self.partial},
                          sort_keys=True)

    def for_day(self, now: datetime) -> BudgetState:
        day = now.astimezone(UTC).date().isoformat()
        return self if self.day == day else BudgetState(day=day)


@dataclass
class Plan:
    batches: list[PlannedBatch] = field(default_factory=list)
    waiting: int = 0
    budget: BudgetState = field(default_factory=BudgetState)
    over_budget: bool = False


class Lane(NamedTuple):
    """A file's lane, what its magic bytes say, why it is heavy ("" if it is not), what the
    cheap probe found (video and audio only) and the pixels an image's header declares."""

    lane: str
    sniffed: Sniffed
    why: str = ""
    facts: CheapFacts | None = None
    pixels: int | None = None


def classify_lane(header: bytes, size: int, batching: Batching,
                  read_range: ReadRange | None = None) -> Lane:
    """Lane by cost, from the header, the size and (video/audio) the cheap probe, which may
    make a ranged read or two: heavy files never hold up the ordinary flow."""
    sniffed = sniff(header)
    pixels = declared_pixels(header) if sniffed.kind == "image" else None
    if size >= batching.heavy_min_bytes:
        return Lane("heavy", sniffed, f"bytes: {size} >= {batching.heavy_min_bytes}",
                    pixels=pixels)
    if sniffed.kind == "image":
        if pixels is not None and pixels >= batching.heavy_min_pixels:
            return Lane("heavy", sniffed, f"pixels: {pixels} >= {batching.heavy_min_pixels}",
                        pixels=pixels)
        return Lane("image", sniffed, pixels=pixels)
    if sniffed.kind in ("audio", "video"):
        facts = cheap_probe(header, size=size, read_range=read_range,
                            chunk=batching.header_bytes)
        why = heavy_because(facts, sniffed, batching)
        return Lane("heavy" if why else "av", sniffed, why, facts)
    return Lane("image", sniffed)  # unknown content is rejected cheaply with the images


def heavy_because(facts: CheapFacts, sniffed: Sniffed, batching: Batching) -> str:
    """Why a video or audio file is heavy by what it declares ("" when it is not)."""
    heavy = [c for c in facts.codecs if c in batching.heavy_codecs]
    if heavy:
        return f"codec: {heavy[0]}"
    if facts.pixels and facts.pixels >= batching.heavy_min_video_pixels:
        return (f"video pixels: {facts.width}x{facts.height} >= "
                f"{batching.heavy_min_video_pixels}")
    video = facts.has_video if facts.has_video is not None else sniffed.kind == "video"
    seconds = facts.duration_seconds
    if video and seconds is not None and seconds >= batching.heavy_min_duration_seconds:
        return f"duration: {seconds:.0f} s >= {batching.heavy_min_duration_seconds:g} s"
    return ""


# The cost model: a file's work in CPU-seconds of one core of this machine (2 cores, Pillow
# 13 with libjpeg-turbo, PyAV), for what its run does to it: stage and hash, structure walk,
# metadata, derivatives, fixity re-hash. Anchored on quiet-machine measurements: a 12 MP
# camera JPEG (4.5 MB) ~0.08 s (both derivatives from one decode 73 ms, SHA-256 1.9 GB/s), a
# 320 x 240 JPEG (13 KB) ~5 ms, a 1080p H.264 clip ~0.87 s per second of media (rendition
# x264 veryfast, 2.3x real time on two threads); the ratios between sizes, formats (a 12 MP
# PNG or WebP costs ~2x the JPEG: no DCT draft), frame sizes and audio lengths were measured
# per file on this machine. The run's per-file bookkeeping (checks, catalog rows) is left
# out. An estimate only sizes batches: off by half, a batch is half as long, never wrong.
FILE_SECONDS = 0.004               # any file: open, sniff, structure walk, metadata, writes
BYTE_SECONDS = 1.5e-9              # per byte: hash while staging, copy, fsync, fixity re-hash
JPEG_DECODED_MP_SECONDS = 0.022    # per megapixel left after the DCT draft: decode, resize,
                                   # encode both derivatives
IMAGE_MP_SECONDS = 0.013           # other images, per megapixel: full decode, resize, encode
# An image whose header the sensor does not parse (WebP, AVIF, HEIF: C parsers stay in the
# workers) is sized from its bytes, at what such files usually carry per pixel.
IMAGE_BYTES_PER_PIXEL = {"webp": 0.1, "avif": 0.1, "heif": 0.2, "heic": 0.2}
OTHER_IMAGE_BYTES_PER_PIXEL = 0.3
VIDEO_FILE_SECONDS = 0.3           # probe, poster frame (seek + decode), its thumbnail
VIDEO_SECOND_SECONDS = 0.03        # per second of media: demux, audio re-encode, muxing
VIDEO_DECODE_MP_SECONDS = 0.20     # per second and megapixel of the source frame: decode
VIDEO_ENCODE_MP_SECONDS = 1.46     # per second and megapixel of the rendition: scale, x264
VIDEO_BYTES_PER_SECOND = 1_000_000  # a video whose index is out of reach: 8 Mbit/s...
VIDEO_UNKNOWN_FRAME = (1920, 1080)  # ...of 1080p frames
AUDIO_FILE_SECONDS = 0.3           # the preview: decode and encode its first 30 s
AUDIO_SECOND_SECONDS = 0.002       # per second of media: the waveform decodes it all
AUDIO_BYTES_PER_SECOND = 16_000    # MP3/Ogg (no cheap probe): 128 kbit/s
MAX_FILE_SECONDS = 86_400.0        # what a header may claim at most (past any time limit)


@dataclass(frozen=True)
class OutputSizes:
    """What the policy renders, as far as a file's cost goes."""

    draft_edge: int = 1440  # the largest image derivative's long edge: a JPEG's DCT draft
    rendition_edge: int | None = 720  # a video's web rendition (None: no rendition made)

    @classmethod
    def of(cls, policy: Policy) -> OutputSizes:
        rendition = policy.video.rendition
        return cls(max(spec.long_edge for spec in policy.derivatives),
                   rendition.long_edge if rendition.mode != "never" else None)


def estimate_seconds(routed: Lane, size: int, outputs: OutputSizes = OutputSizes()) -> float:
    """A file's estimated work in CPU-seconds of one core here, from what the sensor knows:
    its bytes, the pixels its header declares (images), the duration and frame size the
    cheap probe found (video, audio). A hostile header's claims are capped."""
    estimate = _estimate(routed, size, outputs)
    return min(estimate, MAX_FILE_SECONDS) if math.isfinite(estimate) else MAX_FILE_SECONDS


def _estimate(routed: Lane, size: int, outputs: OutputSizes) -> float:
    seconds = FILE_SECONDS + BYTE_SECONDS * size
    kind = routed.sniffed.kind
    if kind == "image":
        pixels = routed.pixels or size / IMAGE_BYTES_PER_PIXEL.get(
            routed.sniffed.type or "", OTHER_IMAGE_BYTES_PER_PIXEL)
        if routed.sniffed.type == "jpeg":
            decoded = _after_draft(pixels, outputs.draft_edge)
            return seconds + JPEG_DECODED_MP_SECONDS * decoded / 1e6
        return seconds + IMAGE_MP_SECONDS * pixels / 1e6
    facts = routed.facts or CheapFacts()
    if kind == "video" and facts.has_video is not False:
        duration = facts.duration_seconds or size / VIDEO_BYTES_PER_SECOND
        width, height = ((facts.width, facts.height) if facts.width and facts.height
                         else VIDEO_UNKNOWN_FRAME)
        source = width * height / 1e6
        edge = outputs.rendition_edge
        rendition = source * min(1.0, edge / max(width, height)) ** 2 if edge else 0.0
        per_second = (VIDEO_SECOND_SECONDS + VIDEO_DECODE_MP_SECONDS * source
                      + VIDEO_ENCODE_MP_SECONDS * rendition)
        return seconds + VIDEO_FILE_SECONDS + duration * per_second
    if kind in ("audio", "video"):  # audio, or a video container holding only sound
        duration = facts.duration_seconds or size / AUDIO_BYTES_PER_SECOND
        return seconds + AUDIO_FILE_SECONDS + duration * AUDIO_SECOND_SECONDS
    return seconds  # sidecars; unknown content is rejected after a sniff


def _after_draft(pixels: float, draft_edge: int) -> float:
    """Pixels a JPEG decodes to at the largest DCT scale (1/2, 1/4, 1/8) whose long edge
    still covers `draft_edge` (the header gives only width x height here: taken as 4:3)."""
    long_edge = (pixels * 4 / 3) ** 0.5
    for scale in (8, 4, 2):
        if long_edge / scale >= draft_edge:
            return pixels / scale**2
    return pixels


def lane_limits(lane: str, batching: Batching) -> tuple[int, int]:
    """(max files, max bytes) of one batch: video and audio batches are sized by work."""
    if lane == "av":
        return batching.av_max_files, batching.av_max_bytes
    return batching.max_files, batching.max_bytes


def within_budget(state: BudgetState, batching: Batching, now: datetime) -> bool:
    """True while today's partial batches keep pace with the daily budget (plus a burst).

    Full batches never count: a flood is already batched as efficiently as it can be."""
    utc = now.astimezone(UTC)
    elapsed = (utc - utc.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
    allowed = batching.daily_partition_budget * elapsed / 86400 + batching.budget_burst
    return state.partial < allowed


def plan_batches(
    candidates: list[Candidate], batching: Batching, state: BudgetState, now: datetime,
    freshness_seconds: float, open_per_lane: Mapping[str, int] | None = None,
) -> Plan:
    """Decide which batches to close now; the rest wait for the next tick.

    Oldest files first, a lane's batch takes files until it holds `max_files`, until the next
    file would pass `max_bytes`, or until its estimated work reaches `target_batch_seconds`
    (the file that reaches it is the last one in: a file heavier than the target closes its
    batch at once).

    A batch that is not full closes on its wait only while its lane has fewer open batches
    (`open_per_lane`: queued or running) than `open_batches_per_lane`: a small batch closed
    while the lane's runs are busy would only queue, and each run has a fixed cost; so under
    a backlog the files gather into bigger batches, and a lone file on an idle lane still
    goes at once. The freshness bound closes it whatever the lane is doing."""
    state = replace(state.for_day(now))  # never mutate the caller's state
    plan = Plan(budget=state)
    open_now = dict(open_per_lane or {})
    target = batching.target_batch_seconds
    for lane in LANES:
        queue = sorted((c for c in candidates if c.lane == lane), key=lambda c: (c.mtime, c.name))
        max_files, max_bytes = lane_limits(lane, batching)
        while queue:
            take, size, seconds = 0, 0, 0.0
            while take < len(queue):
                if take and (take >= max_files or seconds >= target
                             or size + queue[take].size > max_bytes):
                    break
                size += queue[take].size
                seconds += queue[take].seconds
                take += 1
            full = take < len(queue) or take >= max_files or seconds >= target
            waited = now.timestamp() - queue[0].mtime
            if full:
                reason = "full"
            elif waited >= batching.max_wait_seconds and within_budget(state, batching, now) \
                    and open_now.get(lane, 0) < batching.open_batches_per_lane:
                reason = "waited"
            elif waited >= min(batching.over_budget_max_wait_seconds, freshness_seconds):
                reason = "waited (over budget)"
            else:
                plan.over_budget = plan.over_budget or (  # not merely a busy lane
                    waited >= batching.max_wait_seconds
                    and not within_budget(state, batching, now))
                plan.waiting += len(queue)
                break
            plan.batches.append(PlannedBatch(lane, tuple(queue[:take]), reason))
            if not full:  # a flood's full batches never hold back its tail in one tick
                open_now[lane] = open_now.get(lane, 0) + 1
            state.batches += 1
            state.partial += reason != "full"
            queue = queue[take:]
    return plan


def batch_key(now: datetime, sequence: int) -> str:
    """Readable, time-ordered partition key, e.g. 20261127T021503Z-0001."""
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{sequence:04d}"
