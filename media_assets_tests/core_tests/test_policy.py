"""The policy file: defaults, spec hashes, and loud refusal of what the pipeline can't do."""

import pytest

from media_assets.core.policy import (
    BreakerRules,
    DerivativeSpec,
    Policy,
    PolicyError,
    load_policy,
    policy_from_mapping,
)
from media_assets.operations import breaker


def test_the_shipped_policy_file_matches_the_built_in_defaults(tmp_path):
    shipped = load_policy("policy.yaml")
    assert shipped.derivatives == Policy().derivatives
    assert shipped.limits == Policy().limits
    assert shipped.batching == Policy().batching
    assert shipped.video == Policy().video and shipped.audio == Policy().audio
    assert shipped.stamp.startswith("1@")
    assert shipped.retention == Policy().retention and shipped.costs == Policy().costs
    assert shipped.breaker == Policy().breaker and shipped.canaries == {}


def test_each_spec_change_changes_only_that_specs_hash():
    base = policy_from_mapping({})
    bigger = policy_from_mapping({"derivatives": {
        "thumbnail": {"long_edge": 320, "format": "webp"},
        "preview": {"long_edge": 1440, "format": "jpeg"}}})
    assert bigger.derivative("thumbnail").spec_hash != base.derivative("thumbnail").spec_hash
    assert bigger.derivative("preview").spec_hash == base.derivative("preview").spec_hash


def test_video_and_audio_specs_hash_apart_and_name_their_outputs():
    base = policy_from_mapping({})
    faster = policy_from_mapping({"video": {"rendition": {"preset": "ultrafast"}},
                                  "audio": {"preview": {"seconds": 10}}})
    assert faster.video.rendition.spec_hash != base.video.rendition.spec_hash
    assert faster.audio.preview.spec_hash != base.audio.preview.spec_hash
    assert faster.audio.waveform.spec_hash == base.audio.waveform.spec_hash
    assert [s.name for s in base.wanted("video")] == ["thumbnail", "web_rendition"]
    assert [s.name for s in base.wanted("audio")] == ["audio_preview", "waveform"]
    never = policy_from_mapping({"video": {"rendition": {"mode": "never"}}})
    assert [s.name for s in never.wanted("video")] == ["thumbnail"]


@pytest.mark.parametrize("video", [{"rendition": {"mode": "sometimes"}},
                                   {"rendition": {"crf": 99}}, {"rendition": {"codec": "x"}}])
def test_unusable_video_settings_are_refused(video):
    with pytest.raises((ValueError, TypeError)):
        policy_from_mapping({"video": video})


@pytest.mark.parametrize("derivatives", [
    {"thumb": {"long_edge": 250, "format": "webp"}, "preview": {"long_edge": 1440,
                                                                "format": "jpeg"}},
    {"thumbnail": {"long_edge": 250, "format": "gif"}, "preview": {"long_edge": 1440,
                                                                   "format": "jpeg"}},
    {"thumbnail": {"long_edge": 0, "format": "webp"}, "preview": {"long_edge": 1440,
                                                                  "format": "jpeg"}},
])
def test_unusable_derivative_specs_are_refused_with_a_clear_message(derivatives):
    with pytest.raises(ValueError, match="derivative"):
        policy_from_mapping({"derivatives": derivatives})


def problems(raw) -> list[str]:
    """The `path: reason` lines a policy mapping is refused with."""
    with pytest.raises(PolicyError) as refused:
        policy_from_mapping(raw)
    return refused.value.problems


@pytest.mark.parametrize("raw, problem", [
    ({"limitz": {}}, "limitz: unknown key (did you mean 'limits'?)"),
    ({"batching": {"max_filez": 3}}, "batching.max_filez: unknown key (did you mean "
                                     "'max_files'?)"),
    ({"video": {"rendition": {"codec": "h264"}}}, "video.rendition.codec: unknown key"),
    ({"retention": {"classes": {"permanent": {"purge_after": 3}}}},
     "retention.classes.permanent.purge_after: unknown key (did you mean 'purge_after_days'?)"),
    ({"canary": {"poster": {"quality": 70}}},
     "canary.poster: unknown key (known: thumbnail, preview)"),
])
def test_an_unknown_key_is_refused_at_any_depth_with_its_path(raw, problem):
    assert [p for p in problems(raw) if p.startswith(problem)] != []


def test_a_string_is_never_read_as_a_number():
    assert problems({"batching": {"max_files": "many"}}) == [
        "batching.max_files: Input should be a valid integer (got 'many')"]
    assert problems({"video": {"rendition": {"max_fps": "30"}}}) == [
        "video.rendition.max_fps: Input should be a valid number (got '30')"]


def test_a_count_refuses_fractions_and_booleans_and_a_float_takes_an_int():
    assert problems({"batching": {"max_files": 2.5}}) == [
        "batching.max_files: Input should be a valid integer (got 2.5)"]
    assert problems({"batching": {"max_files": True}}) == [
        "batching.max_files: Input should be a valid integer (got True)"]
    rules = policy_from_mapping({"limits": {"output_factor": 2, "per_file_timeout_seconds": 60}})
    assert rules.limits.output_factor == 2.0 and rules.limits.per_file_timeout_seconds == 60


@pytest.mark.parametrize("raw, problem", [
    # today's trap: every upload would be quarantined as too_large
    ({"limits": {"max_file_bytes": -1}},
     "limits.max_file_bytes: Input should be greater than 0 (got -1)"),
    ({"limits": {"max_pixels": 0}}, "limits.max_pixels: Input should be greater than 0"),
    ({"limits": {"workers": -1}}, "limits.workers: Input should be greater than or equal to 0"),
    ({"limits": {"allowed_types": ["jpeg", "jpg"]}}, "limits.allowed_types[1]: Input should "
                                                     "be 'jpeg', 'png'"),
    ({"limits": {"allowed_types": []}}, "limits.allowed_types: List should have at least 1"),
    ({"batching": {"max_bytes": 0}}, "batching.max_bytes: Input should be greater than 0"),
    ({"batching": {"target_batch_seconds": 0}},
     "batching.target_batch_seconds: Input should be greater than 0"),
    ({"derivatives": {"thumbnail": {"long_edge": 250, "format": "webp", "quality": 0},
                      "preview": {"long_edge": 1440, "format": "jpeg"}}},
     "derivatives.thumbnail.quality: Input should be greater than or equal to 1"),
    ({"derivatives": {"thumbnail": {"long_edge": 2000, "format": "webp"},
                      "preview": {"long_edge": 1440, "format": "jpeg"}}},
     "derivatives.thumbnail.long_edge: 2000 is larger than the preview's (1440)"),
    ({"batching": {"daily_partition_budget": -1}},
     "batching.daily_partition_budget: Input should be greater than or equal to 0"),
    ({"healing": {"backoff_seconds": 0}},
     "healing.backoff_seconds: Input should be greater than 0"),
    ({"video": {"poster_at": 1.5}}, "video.poster_at: Input should be less than or equal to 1"),
    ({"video": {"rendition": {"preset": "fastest"}}},
     "video.rendition.preset: Input should be 'ultrafast'"),
    ({"canary": {"thumbnail": {"fraction": 1.5}}},
     "canary.thumbnail.fraction: Input should be less than or equal to 1"),
    ({"costs": {"warn_at": 1.5}}, "costs.warn_at: Input should be less than 1"),
    ({"breaker": {"window": 0}}, "breaker.window: Input should be greater than 0"),
    ({"retention": {"folders": {"scratch": "ephemerl"}}},
     "retention.folders.scratch: unknown class 'ephemerl'"),
    ({"batching": {"heavy_codecs": "prores"}}, "batching.heavy_codecs: Input should be a list"),
    ({"limits": {"temp_max_age_seconds": 600}},
     "limits.temp_max_age_seconds: 600 must exceed the longest per-file time limit (1800 s)"),
])
def test_a_value_that_makes_no_sense_is_refused_with_its_path(raw, problem):
    assert [p for p in problems(raw) if p.startswith(problem)] != []


def test_zero_workers_means_one_per_core_and_stays_valid():
    assert policy_from_mapping({"limits": {"workers": 0}}).limits.workers == 0


def test_every_problem_is_reported_at_once_under_the_files_name(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("limits:\n  max_file_bytes: -1\nbatching:\n  max_files: many\n")
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    message = str(refused.value)
    assert message.splitlines() == [
        f"invalid policy in {path} (2 problems):",
        "  limits.max_file_bytes: Input should be greater than 0 (got -1)",
        "  batching.max_files: Input should be a valid integer (got 'many')"]
    assert isinstance(refused.value, ValueError)


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("limits:\n  max_pixels: 10\n batching: [\n")
    with pytest.raises(PolicyError, match=rf"{path}.*\n  line 3, column \d+: invalid YAML"):
        load_policy(path)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("batching:\n  max_files: 10\nlimits: {}\nbatching:\n  max_bytes: 99\n")
    with pytest.raises(PolicyError, match=r"line 4, column 1: invalid YAML: duplicate key "
                                          "'batching'"):
        load_policy(path)


def test_a_missing_file_is_refused_with_its_name(tmp_path):
    with pytest.raises(PolicyError, match=r"nowhere\.yaml.*\n  cannot read the file"):
        load_policy(tmp_path / "nowhere.yaml")


def test_no_file_means_the_built_in_defaults():
    assert load_policy(None) == load_policy("") == Policy()
    assert Policy().stamp == "1@defaults"
    assert Policy().batching.target_batch_seconds == 120.0


def test_an_empty_section_means_its_defaults():
    rules = policy_from_mapping({"version": 2, "limits": None, "canary": None,
                                 "retention": {"classes": {"standard": {"cold_after_days": 30},
                                                           "ephemeral": None, "permanent": None}}})
    assert rules.limits == Policy().limits and rules.canaries == {}
    assert rules.version == "2" and rules.stamp == "2@inline"
    assert problems({"batching": {"max_files": None}}) == [
        "batching.max_files: Input should be a valid integer (got None)"]


def test_the_breaker_rules_are_the_policys_own_section():
    assert BreakerRules is breaker.BreakerRules
    assert policy_from_mapping({"breaker": {"consecutive": 3}}).breaker.consecutive == 3


def test_specs_read_positionally_or_by_name_and_dump_their_fields():
    spec = DerivativeSpec("thumbnail", 250, "webp", 80)
    assert spec == DerivativeSpec(name="thumbnail", long_edge=250, format="webp") == \
        Policy().derivative("thumbnail")
    assert spec.model_dump() == {"name": "thumbnail", "long_edge": 250, "format": "webp",
                                 "quality": 80}
    assert Policy().video.rendition.model_dump()["preset"] == "veryfast"


def test_heavy_codecs_are_a_tuple_of_lowercase_names():
    rules = policy_from_mapping({"batching": {"heavy_codecs": ["ProRes", "dnxhd"]}}).batching
    assert rules.heavy_codecs == ("prores", "dnxhd")
    assert policy_from_mapping({"batching": {"heavy_codecs": []}}).batching.heavy_codecs == ()


# Outputs in existing stores are named by these hashes: they must never change for the same
# values. The shipped file's `max_fps: 30` and `seconds: 30` are YAML ints, and hash apart
# from the built-in 30.0 defaults, so both are pinned.
SPEC_NAMES = ("thumbnail", "preview", "web_rendition", "audio_preview", "waveform")
PINNED = {
    "defaults": ("7240011bab54", "f98fbcb65f09", "fdfc293d91b0", "eb7b67a760dd", "8041642980ab"),
    "policy.yaml": ("7240011bab54", "f98fbcb65f09", "ee8dca7242e9", "ccf353adaee4",
                    "8041642980ab"),
    "custom": ("1156292878b2", "ae5a8b789d3c", "a1c9d6e89d8b", "4e5da5afb16a", "9bb6be7295f3"),
}
CUSTOM = {
    "derivatives": {"thumbnail": {"long_edge": 320, "format": "webp", "quality": 70},
                    "preview": {"long_edge": 2048, "format": "jpeg"}},
    "video": {"rendition": {"mode": "when_needed", "long_edge": 1080, "max_fps": 29.97,
                            "crf": 20, "preset": "medium", "audio_bitrate": 96000}},
    "audio": {"preview": {"seconds": 15.5, "bit_rate": 64000},
              "waveform": {"buckets": 500, "width": 800, "height": 100}},
    "canary": {"preview": {"fraction": 0.25, "quality": 90}},
}


@pytest.mark.parametrize("which", sorted(PINNED))
def test_spec_hashes_never_change_for_the_same_values(which):
    policy = {"defaults": Policy(), "policy.yaml": load_policy("policy.yaml"),
              "custom": policy_from_mapping(CUSTOM)}[which]
    assert tuple(policy.spec(name).spec_hash for name in SPEC_NAMES) == PINNED[which]


def test_a_canary_specs_hash_and_stamp_never_change():
    policy = policy_from_mapping(CUSTOM)
    assert policy.canaries["preview"].spec.spec_hash == "f2fcb6569f3c"
    assert policy.spec_stamp("preview") == "ae5a8b789d3c+f2fcb6569f3c@0.25"
