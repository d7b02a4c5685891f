"""Adaptive batching: a lone file goes within seconds, a flood goes in batches of about a
minute of work, and a steady trickle respects the daily partition budget without breaking the
freshness target."""

from datetime import UTC, datetime

import pytest

from media_assets.codec.cheap_probe import CheapFacts
from media_assets.codec.sniff import Sniffed
from media_assets.core.policy import Batching, Policy, RenditionSpec, VideoPolicy
from media_assets.operations.batching import (
    MAX_FILE_SECONDS,
    BudgetState,
    Candidate,
    Lane,
    OutputSizes,
    batch_key,
    classify_lane,
    estimate_seconds,
    heavy_because,
    plan_batches,
)
from media_assets_tests.conftest import png_declaring

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


# The cost model: what a file's run costs, in CPU-seconds of one core of this machine.

JPEG, PNG, WEBP = Sniffed("image", "jpeg"), Sniffed("image", "png"), Sniffed("image", "webp")
MB = 1_000_000


def image(sniffed: Sniffed, pixels: int | None) -> Lane:
    return Lane("image", sniffed, pixels=pixels)


def clip(kind: Sniffed, **declared) -> Lane:
    return Lane("av", kind, facts=CheapFacts(container="mp4", **declared))


def test_a_12_megapixel_camera_jpeg_is_about_80_ms_of_work():
    assert estimate_seconds(image(JPEG, 4000 * 3000), int(4.5 * MB)) == pytest.approx(0.08,
                                                                                     rel=0.1)


def test_a_small_jpeg_is_a_few_milliseconds():
    assert 0.003 < estimate_seconds(image(JPEG, 320 * 240), 13_000) < 0.008


def test_formats_without_a_dct_draft_cost_more_per_pixel_than_jpeg():
    jpeg = estimate_seconds(image(JPEG, 4000 * 3000), int(4.5 * MB))
    png = estimate_seconds(image(PNG, 4000 * 3000), 23 * MB)
    assert png == pytest.approx(0.2, rel=0.2) and png > 2 * jpeg


def test_the_draft_follows_the_largest_derivative():
    """A 12 MP JPEG decodes at 1/2 scale for a 1440 px preview, at 1/8 for thumbnails only."""
    photo = image(JPEG, 4000 * 3000)
    thumbnails_only = OutputSizes(draft_edge=250)
    assert estimate_seconds(photo, MB, thumbnails_only) < estimate_seconds(photo, MB) / 2


def test_an_image_declaring_no_size_is_sized_from_its_bytes():
    """WebP/HEIF headers are not parsed in the sensor: bytes stand for pixels."""
    assert estimate_seconds(image(WEBP, None), int(1.2 * MB)) == pytest.approx(
        estimate_seconds(image(WEBP, 12_000_000), int(1.2 * MB)))


def test_the_header_probe_feeds_the_estimate():
    header = png_declaring(4000, 3000)
    routed = classify_lane(header, 23 * MB, Batching())
    assert (routed.lane, routed.pixels) == ("image", 12_000_000)
    assert estimate_seconds(routed, 23 * MB) == estimate_seconds(image(PNG, 12_000_000),
                                                                 23 * MB)


def test_video_costs_seconds_of_media_times_a_factor_by_frame_size():
    minute = {"duration_seconds": 60.0, "codecs": ("h264", "aac")}
    hd = estimate_seconds(clip(VIDEO, width=1920, height=1080, **minute), 120 * MB)
    assert hd == pytest.approx(60 * 0.87, rel=0.1)  # x264 veryfast to 720p: ~0.87 s/s
    hd_ready = estimate_seconds(clip(VIDEO, width=1280, height=720, **minute), 60 * MB)
    small = estimate_seconds(clip(VIDEO, width=320, height=240, **minute), 5 * MB)
    uhd = estimate_seconds(clip(VIDEO, width=3840, height=2160, **minute), 400 * MB)
    assert small < hd_ready < hd < uhd
    assert small < 0.25 * hd
    no_rendition = OutputSizes(rendition_edge=None)  # video.rendition.mode: never
    assert estimate_seconds(clip(VIDEO, width=1920, height=1080, **minute), 120 * MB,
                            no_rendition) < 0.6 * hd


def test_the_sizes_the_policy_renders_come_from_the_policy():
    policy = Policy(video=VideoPolicy(rendition=RenditionSpec(mode="never")))
    assert OutputSizes.of(policy) == OutputSizes(draft_edge=1440, rendition_edge=None)
    assert OutputSizes.of(Policy()) == OutputSizes(draft_edge=1440, rendition_edge=720)


def test_a_video_whose_index_is_out_of_reach_is_sized_from_its_bytes():
    """No duration, no frame size: 8 Mbit/s of 1080p."""
    blind = estimate_seconds(clip(VIDEO), 60 * MB)
    seen = estimate_seconds(clip(VIDEO, duration_seconds=60.0, width=1920, height=1080),
                            60 * MB)
    assert blind == pytest.approx(seen)


def test_audio_costs_its_preview_plus_a_fast_decode_of_its_duration():
    song = estimate_seconds(clip(AUDIO, duration_seconds=180.0, codecs=("aac",)), 3 * MB)
    podcast = estimate_seconds(clip(AUDIO, duration_seconds=3600.0, codecs=("aac",)),
                               58 * MB)
    assert 0.5 < song < 1.0 and 5 < podcast < 10
    mp3 = Lane("av", Sniffed("audio", "mp3"))  # no cheap probe: 128 kbit/s by its bytes
    assert estimate_seconds(mp3, 2_880_000) == pytest.approx(
        estimate_seconds(clip(AUDIO, duration_seconds=180.0), 2_880_000))
    sound_in_mp4 = clip(VIDEO, duration_seconds=180.0, codecs=("aac",))
    assert estimate_seconds(sound_in_mp4, 3 * MB) == pytest.approx(song)


def test_what_a_hostile_header_claims_is_capped():
    for claim in (1e300, float("inf"), float("nan")):
        claimed = estimate_seconds(clip(VIDEO, duration_seconds=claim), MB)
        assert claimed == MAX_FILE_SECONDS
    assert estimate_seconds(image(PNG, 10**15), MB) == MAX_FILE_SECONDS


def test_sidecars_and_unknown_content_cost_next_to_nothing():
    assert estimate_seconds(Lane("image", Sniffed("sidecar", "xmp")), 4_000) < 0.005
    assert estimate_seconds(Lane("image", Sniffed("other", None)), 4_000) < 0.005


# Batches sized by work, with the shipped defaults.

DEFAULTS = Batching()
SMALL_JPEG = estimate_seconds(image(JPEG, 320 * 240), 13_000)
CAMERA_JPEG = estimate_seconds(image(JPEG, 4000 * 3000), int(4.5 * MB))


def photos(count: int, age: float, size: int, seconds: float) -> list[Candidate]:
    return [Candidate(f"p{i:05d}.jpg", size, NOW.timestamp() - age - i * 0.0001, "image",
                      seconds=seconds) for i in range(count)]


def test_a_backlog_of_5000_small_files_goes_in_a_few_big_batches():
    plan = plan_batches(photos(5000, 10, 13_000, SMALL_JPEG), DEFAULTS, BudgetState(), NOW,
                        600)
    assert [len(b.files) for b in plan.batches] == [2000, 2000, 1000]
    assert [b.closed_because for b in plan.batches] == ["full", "full", "waited"]
    assert plan.waiting == 0


def test_a_lone_small_file_still_closes_on_max_wait_within_seconds():
    assert DEFAULTS.max_wait_seconds <= 2
    young = plan_batches(photos(1, DEFAULTS.max_wait_seconds / 2, 13_000, SMALL_JPEG),
                         DEFAULTS, BudgetState(), NOW, 600)
    assert young.batches == [] and young.waiting == 1
    settled = plan_batches(photos(1, 2.5, 13_000, SMALL_JPEG), DEFAULTS, BudgetState(), NOW,
                           600)
    assert [b.closed_because for b in settled.batches] == ["waited"]


def test_a_flood_of_12_megapixel_photos_closes_batches_at_about_the_target_work():
    plan = plan_batches(photos(4000, 10, int(2.5 * MB), CAMERA_JPEG), DEFAULTS, BudgetState(),
                        NOW, 600)
    full = [b for b in plan.batches if b.closed_because == "full"]
    assert len(full) == 2
    for batch in full:  # the file that reaches the target is the last one in
        assert DEFAULTS.target_batch_seconds <= batch.estimated_seconds < (
            DEFAULTS.target_batch_seconds + CAMERA_JPEG)
        assert batch.size <= DEFAULTS.max_bytes and len(batch.files) < DEFAULTS.max_files
    assert sum(len(b.files) for b in plan.batches) == 4000


def test_a_file_heavier_than_the_target_closes_its_batch_at_once():
    long_clip = Candidate("talk.mp4", 150 * MB, NOW.timestamp() - 1, "av", seconds=900.0)
    plan = plan_batches([long_clip, *files(2, age=0, lane="av")], DEFAULTS, BudgetState(),
                        NOW, 600)
    [batch] = plan.batches  # not waiting for max_wait: it is a whole batch of work already
    assert (batch.files, batch.closed_because) == ((long_clip,), "full")
    assert plan.waiting == 2


def test_batches_full_by_work_close_over_the_budget_and_never_count_against_it():
    spent = BudgetState(day=NOW.date().isoformat(), batches=500, partial=500)
    plan = plan_batches(photos(20, 0, 1_000, 7.0), DEFAULTS, spent, NOW, 600)
    assert [len(b.files) for b in plan.batches] == [18]  # 126 s of work; two files wait
    assert (plan.budget.batches, plan.budget.partial) == (501, 500)


def test_while_a_lanes_runs_are_busy_a_partial_batch_gathers_instead_of_queueing():
    """Under a backlog, small batches closed on their wait would only queue behind the lane's
    runs and each pay a run's fixed cost: they gather until a run slot frees or they fill."""
    busy = {"image": RULES.open_batches_per_lane}
    waiting = plan_batches(files(3, age=6), RULES, BudgetState(), NOW, 600, busy)
    assert waiting.batches == [] and waiting.waiting == 3
    assert not waiting.over_budget  # a busy lane, not the daily partition budget
    full = plan_batches(files(5, age=6), RULES, BudgetState(), NOW, 600, busy)
    assert [b.closed_because for b in full.batches] == ["full"]  # full ones never wait
    other_lane = plan_batches(files(1, age=6, lane="av"), RULES, BudgetState(), NOW, 600, busy)
    assert [b.closed_because for b in other_lane.batches] == ["waited"]
    stale = plan_batches(files(1, age=700), RULES, BudgetState(), NOW, 600, busy)
    assert [b.closed_because for b in stale.batches] == ["waited (over budget)"]

