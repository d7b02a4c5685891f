"""A canary applies a new derivative spec to a fraction of the contents chosen by content
hash; each rollout step is recognised for the audit log; unused specs' outputs are found."""

import hashlib
from datetime import UTC, datetime

import pytest

from media_assets.core.policy import canary_bucket, policy_from_mapping
from media_assets.operations.rollout import note_rollout, transitions, unreferenced_derivatives
from media_assets.records.audit import read_audit
from media_assets.storage import LocalObjectStore

STABLE = {"thumbnail": {"long_edge": 250, "format": "webp", "quality": 80},
          "preview": {"long_edge": 1440, "format": "jpeg", "quality": 80}}
CONTENTS = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]


def policy(canary=None, **thumbnail):
    derivatives = {**STABLE, "thumbnail": {**STABLE["thumbnail"], **thumbnail}}
    return policy_from_mapping({"derivatives": derivatives, "canary": canary or {}})


def test_the_canary_takes_a_stable_fraction_of_contents_by_hash():
    rules = policy({"thumbnail": {"fraction": 0.1, "quality": 70}})
    chosen = [c for c in CONTENTS if rules.in_canary("thumbnail", c)]
    assert 150 < len(chosen) < 250  # ~10 % of 2,000
    assert chosen == [c for c in CONTENTS if canary_bucket(c) < 0.1]  # the same files always
    assert not any(rules.in_canary("preview", c) for c in CONTENTS)


def test_a_canary_content_keeps_both_specs_and_its_current_one_is_the_canarys():
    rules = policy({"thumbnail": {"fraction": 0.1, "quality": 70}})
    inside = next(c for c in CONTENTS if rules.in_canary("thumbnail", c))
    outside = next(c for c in CONTENTS if not rules.in_canary("thumbnail", c))
    assert rules.derivative_for("thumbnail", inside).quality == 70
    assert [s.quality for s in rules.specs_to_keep("thumbnail", inside)] == [70, 80]
    assert [s.quality for s in rules.specs_to_keep("thumbnail", outside)] == [80]
    assert [s.quality for s in rules.wanted_for("image", inside)] == [70, 80]  # thumb, preview


def test_a_canary_equal_to_the_stable_spec_is_no_canary():
    assert policy({"thumbnail": {"fraction": 0.5, "quality": 80}}).canaries == {}


@pytest.mark.parametrize("canary, message", [
    ({"poster": {"quality": 70}}, "canary.poster: unknown key"),
    ({"thumbnail": {"fraction": 0, "quality": 70}}, "fraction"),
    ({"thumbnail": {"fraction": 0.1, "quality": 700}}, "quality"),
])
def test_a_bad_canary_is_refused_with_a_clear_message(canary, message):
    with pytest.raises(ValueError, match=message):
        policy(canary)


def test_each_rollout_step_is_recognised():
    seen = {}

    def step(rules):
        found = transitions(seen, rules)
        seen.update({n: {"stable": rules.derivative(n).spec_hash,
                         "canary": rules.canaries[n].spec.spec_hash if n in rules.canaries
                         else None,
                         "fraction": rules.canaries[n].fraction if n in rules.canaries
                         else None} for n in ("thumbnail", "preview")})
        return [t.action for t in found]

    assert step(policy()) == []  # first sight
    assert step(policy({"thumbnail": {"fraction": 0.1, "quality": 70}})) == ["rollout_canary"]
    assert step(policy(quality=70)) == ["rollout_promote"]
    assert step(policy({"thumbnail": {"fraction": 0.1, "quality": 60}}, quality=70)) == [
        "rollout_canary"]
    assert step(policy(quality=70)) == ["rollout_rollback"]
    assert step(policy(quality=65)) == ["spec_change"]
    assert step(policy({"thumbnail": {"fraction": 1.0, "quality": 60}}, quality=65)) == [
        "rollout_canary"]


def test_rollout_steps_are_audited_once(tmp_path):
    store = LocalObjectStore(tmp_path)
    now = datetime(2026, 11, 27, tzinfo=UTC)
    note_rollout(store, policy(), now, actor="test")
    canary = policy({"thumbnail": {"fraction": 0.1, "quality": 70}})
    assert [t.action for t in note_rollout(store, canary, now, actor="test")] == [
        "rollout_canary"]
    assert note_rollout(store, canary, now, actor="test") == []
    audit = read_audit(store)
    assert audit["action"].to_list() == ["rollout_canary"]
    assert "for 10% of files" in audit["reason"][0]


def test_outputs_of_unreferenced_specs_are_found_by_spec_hash(tmp_path):
    store = LocalObjectStore(tmp_path)
    for spec_hash in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        store.put_bytes(f"derived/thumbnail/{spec_hash}/ab/cd/abcd.webp", b"x")
    found = unreferenced_derivatives(store, keep={"aaaaaaaaaaaa"})
    assert found == {"thumbnail/bbbbbbbbbbbb": ["derived/thumbnail/bbbbbbbbbbbb/ab/cd/abcd.webp"]}
