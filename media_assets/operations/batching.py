"""Adaptive batching, as a pure function of what the inbox holds and the time.

A lane's batch closes when it is full (files or bytes) or when its oldest file has waited
`max_wait_seconds`: a lone file goes within seconds, a flood goes in large batches. Under a
steady trickle a daily partition budget stretches the wait (never past the freshness target),
so partitions grow with bursts of work, not with files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import NamedTuple

from media_assets.codec.cheap_probe import CheapFacts, ReadRange, cheap_probe
from media_assets.codec.sniff import Sniffed, declared_pixels, sniff
from media_assets.core.policy import Batching

LANES = ("image", "av", "heavy")


@dataclass(frozen=True)
class Candidate:
    """A settled, unclaimed inbox file with the lane its header put it in."""

    name: str
    size: int
    mtime: float
    lane: str
    why: str = ""  # why it went heavy, e.g. "duration: 3600 s >= 1800 s"


@dataclass(frozen=True)
class PlannedBatch:
    lane: str
    files: tuple[Candidate, ...]
    closed_because: str  # "full" | "waited" | "waited (over budget)"


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
    """A file's lane, what its magic bytes say, why it is heavy ("" if it is not), and what
    the cheap probe found (video and audio only)."""

    lane: str
    sniffed: Sniffed
    why: str = ""
    facts: CheapFacts | None = None


def classify_lane(header: bytes, size: int, batching: Batching,
                  read_range: ReadRange | None = None) -> Lane:
    """Lane by cost, from the header, the size and (video/audio) the cheap probe, which may
    make a ranged read or two: heavy files never hold up the ordinary flow."""
    sniffed = sniff(header)
    if size >= batching.heavy_min_bytes:
        return Lane("heavy", sniffed, f"bytes: {size} >= {batching.heavy_min_bytes}")
    if sniffed.kind == "image":
        pixels = declared_pixels(header)
        if pixels is not None and pixels >= batching.heavy_min_pixels:
            return Lane("heavy", sniffed, f"pixels: {pixels} >= {batching.heavy_min_pixels}")
        return Lane("image", sniffed)
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
    freshness_seconds: float,
) -> Plan:
    """Decide which batches to close now; the rest wait for the next tick."""
    state = replace(state.for_day(now))  # never mutate the caller's state
    plan = Plan(budget=state)
    for lane in LANES:
        queue = sorted((c for c in candidates if c.lane == lane), key=lambda c: (c.mtime, c.name))
        max_files, max_bytes = lane_limits(lane, batching)
        while queue:
            take, size = 0, 0
            while take < len(queue) and take < max_files:
                if take and size + queue[take].size > max_bytes:
                    break
                size += queue[take].size
                take += 1
            full = take < len(queue) or take == max_files
            waited = now.timestamp() - queue[0].mtime
            if full:
                reason = "full"
            elif waited >= batching.max_wait_seconds and within_budget(state, batching, now):
                reason = "waited"
            elif waited >= min(batching.over_budget_max_wait_seconds, freshness_seconds):
                reason = "waited (over budget)"
            else:
                plan.over_budget = plan.over_budget or waited >= batching.max_wait_seconds
                plan.waiting += len(queue)
                break
            plan.batches.append(PlannedBatch(lane, tuple(queue[:take]), reason))
            state.batches += 1
            state.partial += reason != "full"
            queue = queue[take:]
    return plan


def batch_key(now: datetime, sequence: int) -> str:
    """Readable, time-ordered partition key, e.g. 20261127T021503Z-0001."""
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{sequence:04d}"
