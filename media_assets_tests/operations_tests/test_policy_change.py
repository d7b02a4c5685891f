"""Changing the policy from the dashboard: a proposal is validated as the file is and says
what it changes; applying it (by a second person when the policy says so) makes it active
for every tick and new run until the file itself changes; any version can be rolled back to;
each step is in the audit trail."""

from datetime import UTC, datetime

import pytest

from media_assets.core.policy import PolicyError, policy_digest
from media_assets.operations.policy_change import PolicyChangeRefused, apply, propose, roll_back
from media_assets.records.audit import read_audit
from media_assets.records.policy_versions import (
    Activation,
    active_policy_bytes,
    policy_for_ticks,
)
from media_assets.storage import LocalObjectStore

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
FILE = (b"batching:\n  max_files: 100\nderivatives:\n"
        b"  thumbnail: {long_edge: 250, format: webp, quality: 80}\n"
        b"  preview: {long_edge: 1440, format: jpeg, quality: 80}\n")
QUALITY_85 = "derivatives:\n  thumbnail: {long_edge: 250, format: webp, quality: 85}\n"


@pytest.fixture
def setup(tmp_path):
    store, path = LocalObjectStore(tmp_path / "store"), tmp_path / "policy.yaml"
    path.write_bytes(FILE)
    policy_for_ticks(store, path)  # the file seeds the first version
    return store, path


def proposal(store, path, patch=QUALITY_85, by="alice", **kwargs):
    current, _, _ = active_policy_bytes(store, path)
    return propose(store, current, kwargs.pop("full", ""), patch, proposed_by=by,
                   reason="sharper thumbnails", now=NOW)


def test_a_proposal_shows_its_diff_and_what_it_makes_stale(setup):
    store, path = setup
    made = proposal(store, path)
    assert made.stale == ("thumbnail",) and made.base_digest == policy_digest(FILE)
    # what changes, not how the file was written (its comments and layout stay out)
    assert [line for line in made.diff.splitlines() if line[:1] in "+-"
            and not line.startswith(("+++", "---"))] == ["-    quality: 80", "+    quality: 85"]
    assert "max_files: 100" in active_policy_bytes(store, path)[0].decode()  # not applied yet


def test_a_proposal_is_validated_exactly_as_the_file_is(setup):
    store, path = setup
    with pytest.raises(PolicyError, match="batching.max_files: Input should be a valid integer"):
        proposal(store, path, patch="batching:\n  max_files: many\n")
    with pytest.raises(PolicyError, match="thumbnail"):  # a semantic rule, same precision
        proposal(store, path, patch="derivatives:\n  thumbnail: {long_edge: 4000}\n")
    with pytest.raises(PolicyChangeRefused, match="active policy already"):
        proposal(store, path, patch="batching:\n  max_files: 100\n")


def test_applying_makes_it_active_for_ticks_until_the_file_changes(setup):
    store, path = setup
    made = proposal(store, path)
    active = apply(store, made.proposal_id, approved_by="bob",
                   rules=policy_for_ticks(store, path)[0], file_digest=policy_digest(FILE),
                   now=NOW)
    assert active.by == "alice (approved by bob)" and active.why == "sharper thumbnails"
    assert policy_for_ticks(store, path)[0].derivative("thumbnail").quality == 85
    assert policy_for_ticks(store, path)[0].batching.max_files == 100  # the rest kept

    path.write_bytes(FILE.replace(b"100", b"50"))  # a deploy changes the file: it wins
    after_deploy = policy_for_ticks(store, path)[0]
    assert after_deploy.batching.max_files == 50
    assert after_deploy.derivative("thumbnail").quality == 80
    actions = read_audit(store).select("action", "actor").rows()
    assert ("policy_apply", "alice (approved by bob)") in actions
    assert actions[-1] == ("policy_change", "policy file")


def test_a_second_approver_is_required_when_the_policy_says_so(setup):
    store, path = setup
    path.write_bytes(FILE + b"governance:\n  require_second_approver: true\n")
    rules = policy_for_ticks(store, path)[0]
    made = proposal(store, path)
    with pytest.raises(PolicyChangeRefused, match="requires a second approver"):
        apply(store, made.proposal_id, approved_by="Alice", rules=rules, file_digest="f",
              now=NOW)
    assert apply(store, made.proposal_id, approved_by="bob", rules=rules, file_digest="f",
                 now=NOW).digest == made.digest


def test_a_proposal_made_against_an_older_version_is_refused(setup):
    store, path = setup
    first = proposal(store, path)
    second = proposal(store, path, patch="batching:\n  max_files: 200\n", by="carol")
    rules = policy_for_ticks(store, path)[0]
    apply(store, second.proposal_id, approved_by="dave", rules=rules, file_digest="f", now=NOW)
    with pytest.raises(PolicyChangeRefused, match="changed since this proposal"):
        apply(store, first.proposal_id, approved_by="dave", rules=rules, file_digest="f",
              now=NOW)


def test_any_kept_version_can_be_rolled_back_to(setup):
    store, path = setup
    made = proposal(store, path)
    apply(store, made.proposal_id, approved_by="bob", rules=policy_for_ticks(store, path)[0],
          file_digest=policy_digest(FILE), now=NOW)
    back = roll_back(store, policy_digest(FILE)[:8], by="erin", reason="thumbnails too big",
                     file_digest=policy_digest(FILE), now=NOW)
    assert back.digest == policy_digest(FILE) == Activation.read(store).digest
    assert policy_for_ticks(store, path)[0].derivative("thumbnail").quality == 80
    with pytest.raises(PolicyChangeRefused, match="names 0 kept versions"):
        roll_back(store, "ffffffff", by="erin", reason="x", file_digest="f", now=NOW)
