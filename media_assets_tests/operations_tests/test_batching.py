"""Adaptive batching: a lone file goes within seconds, a flood goes in large batches, and a
steady trickle respects the daily partition budget without breaking the freshness target."""

from datetime import UTC, datetime

from media_assets.codec.cheap_probe import CheapFacts
from media_assets.codec.sniff import Sniffed
from media_assets.core.policy import Batching
from media_assets.operations.batching import (
    BudgetState,
    Candidate,
    batch_key,
    classify_lane,
    heavy_because,
    plan_batches,
)

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
RULES = Batching(max_files=4, max_wait_seconds=5, daily_partition_budget=48, budget_burst=2,
                 over_budget_max_wait_seconds=300, max_bytes=10_000)


def files(count: int, age: float, lane: str = "image", size: int = 10) -> list[Candidate]:
    return [Candidate(f"f{i:03d}.jpg", size, NOW.timestamp() - age - i * 0.001, lane)
            for i in range(count)]


def test_a_flood_closes_full_batches_and_leaves_a_young_remainder_waiting():
    plan = plan_batches(files(10, age=1), RULES, BudgetState(), NOW, 600)
    assert [len(b.files) for b in plan.batches] == [4, 4]
    assert all(b.closed_because == "full" for b in plan.batches)
    assert plan.waiting == 2


def test_a_lone_file_goes_once_it_has_waited_max_wait():
    assert plan_batches(files(1, age=1), RULES, BudgetState(), NOW, 600).batches == []
    plan = plan_batches(files(1, age=6), RULES, BudgetState(), NOW, 600)
    assert [b.closed_because for b in plan.batches] == ["waited"]


def test_batches_close_by_bytes_as_well_as_by_count():
    plan = plan_batches(files(3, age=1, size=6_000), RULES, BudgetState(), NOW, 600)
    assert [len(b.files) for b in plan.batches] == [1, 1]


def test_video_and_audio_batches_are_sized_by_work_not_by_count():
    rules = Batching(max_files=100, max_bytes=10_000, av_max_files=3, av_max_bytes=2_500)
    flood = files(10, age=10, lane="av", size=1_000) + files(10, age=10, size=1_000)
    plan = plan_batches(flood, rules, BudgetState(), NOW, 600)
    sizes = sorted((b.lane, len(b.files)) for b in plan.batches)
    assert sizes == [("av", 2)] * 5 + [("image", 10)]  # 2,500 bytes of video per batch


def test_lanes_never_share_a_batch():
    mixed = files(2, age=10) + files(1, age=10, lane="heavy")
    plan = plan_batches(mixed, RULES, BudgetState(), NOW, 600)
    assert sorted((b.lane, len(b.files)) for b in plan.batches) == [("heavy", 1), ("image", 2)]


def test_over_the_daily_budget_a_trickle_waits_longer_but_never_past_freshness():
    spent = BudgetState(day=NOW.date().isoformat(), batches=40, partial=40)  # pace: ~26
    waiting = plan_batches(files(1, age=60), RULES, spent, NOW, 600)
    assert waiting.batches == [] and waiting.over_budget
    overdue = plan_batches(files(1, age=301), RULES, spent, NOW, 600)
    assert [b.closed_because for b in overdue.batches] == ["waited (over budget)"]
    fresh_bound = plan_batches(files(1, age=121), RULES, spent, NOW, freshness_seconds=120)
    assert len(fresh_bound.batches) == 1


def test_full_batches_close_even_over_budget():
    spent = BudgetState(day=NOW.date().isoformat(), batches=1000, partial=1000)
    assert len(plan_batches(files(4, age=0), RULES, spent, NOW, 600).batches) == 1


def test_a_floods_full_batches_do_not_hold_back_its_tail():
    flood = plan_batches(files(4 * 30 + 1, age=10), RULES, BudgetState(), NOW, 600)
    assert len(flood.batches) == 31  # 30 full, then the tail closes by age at once
    assert flood.batches[-1].closed_because == "waited"
    assert (flood.budget.batches, flood.budget.partial) == (31, 1)


def test_the_budget_counter_resets_each_day_and_fits_in_a_tiny_cursor():
    state = BudgetState(day="2026-11-26", batches=99, partial=99)
    plan = plan_batches(files(1, age=10), RULES, state, NOW, 600)
    assert plan.budget.day == "2026-11-27" and plan.budget.batches == 1
    cursor = plan.budget.to_cursor()
    assert len(cursor) < 64 and BudgetState.from_cursor(cursor) == plan.budget


def test_batch_keys_are_readable_and_time_ordered():
    assert batch_key(NOW, 1) == "20261127T120000Z-0001"
    assert batch_key(NOW, 2) > batch_key(NOW, 1)


def test_lanes_come_from_the_header_not_the_name(jpeg_header: bytes):
    assert classify_lane(jpeg_header, 5_000, Batching())[0] == "image"
    assert classify_lane(jpeg_header, 300 * 1024**2, Batching())[0] == "heavy"
    mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
    assert classify_lane(mp4, 5_000, Batching())[0] == "av"


def test_images_declaring_huge_dimensions_go_to_the_heavy_lane(big_png_header: bytes):
    routed = classify_lane(big_png_header, 5_000, Batching(heavy_min_pixels=1_000_000))
    assert (routed.lane, routed.sniffed.type) == ("heavy", "png")


def test_classify_lane_says_why_a_file_went_heavy(jpeg_header: bytes, big_png_header: bytes):
    assert classify_lane(jpeg_header, 5_000, Batching()).why == ""
    assert classify_lane(jpeg_header, 300 * 1024**2, Batching()).why.startswith("bytes: ")
    huge = classify_lane(big_png_header, 5_000, Batching(heavy_min_pixels=1_000_000))
    assert huge.why == "pixels: 400000000 >= 1000000"


def facts(**declared) -> CheapFacts:
    return CheapFacts(container="mp4", **declared)


VIDEO, AUDIO = Sniffed("video", "mp4"), Sniffed("audio", "m4a")


def test_videos_go_heavy_by_declared_duration_frame_size_or_codec():
    rules = Batching()  # 30 min, 3840 x 2160, prores
    assert heavy_because(facts(duration_seconds=3600.0, width=320, height=240,
                               codecs=("h264",)), VIDEO, rules) == "duration: 3600 s >= 1800 s"
    assert heavy_because(facts(duration_seconds=10.0, width=3840, height=2160,
                               codecs=("hevc",)), VIDEO, rules).startswith("video pixels: ")
    assert heavy_because(facts(duration_seconds=10.0, width=1920, height=1080,
                               codecs=("prores",)), VIDEO, rules) == "codec: prores"
    short_hd = facts(duration_seconds=60.0, width=1920, height=1080, codecs=("h264", "aac"))
    assert heavy_because(short_hd, VIDEO, rules) == ""


def test_long_audio_stays_in_the_av_lane_even_in_a_video_container():
    podcast = facts(duration_seconds=7200.0, codecs=("aac",))
    assert heavy_because(podcast, AUDIO, Batching()) == ""
    assert heavy_because(podcast, VIDEO, Batching()) == ""  # an audio-only .mp4
    # tracks not seen (index out of reach): the container's kind decides
    assert heavy_because(facts(duration_seconds=7200.0), VIDEO, Batching()) != ""


def test_the_av_lane_classifies_through_the_probe_with_a_ranged_read():
    import struct

    moov = (struct.pack(">I4s", 8 + 108, b"moov") + struct.pack(">I4s", 108, b"mvhd")
            + bytes(12) + struct.pack(">II", 1000, 5_400_000) + bytes(80))
    head = struct.pack(">I4s", 16, b"ftyp") + b"isom\0\0\0\0" + struct.pack(">I4s", 1008,
                                                                           b"mdat")
    data = head + bytes(1000) + moov
    lane = classify_lane(data[:64], len(data), Batching(),
                         lambda offset, size: data[offset:offset + size])
    assert (lane.lane, lane.why, lane.facts.duration_seconds) == (
        "heavy", "duration: 5400 s >= 1800 s", 5400.0)
    assert classify_lane(data[:64], len(data), Batching()).lane == "av"  # no ranged read
