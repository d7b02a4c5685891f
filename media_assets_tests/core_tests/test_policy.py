"""The policy file: defaults, spec hashes, and loud refusal of what the pipeline can't do."""

import pytest

from media_assets.core.policy import Policy, load_policy, policy_from_mapping


def test_the_shipped_policy_file_matches_the_built_in_defaults(tmp_path):
    shipped = load_policy("policy.yaml")
    assert shipped.derivatives == Policy().derivatives
    assert shipped.limits == Policy().limits
    assert shipped.batching == Policy().batching
    assert shipped.video == Policy().video and shipped.audio == Policy().audio
    assert shipped.stamp.startswith("1@")


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


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown policy keys"):
        policy_from_mapping({"limitz": {}})


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
