"""A run uses one policy: its first read pins the version, every later step reads it; ticks
go on with the last valid version while the file is broken, and say what is wrong with it."""

import pytest

from media_assets.core.policy import PolicyError
from media_assets.records.policy_versions import policy_for_run, policy_for_ticks
from media_assets.storage import LocalObjectStore

GOOD = "batching:\n  max_files: 10\n"
EDITED = "batching:\n  max_files: 20\n"
BROKEN = "batching: [unclosed\n"


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "store")


def test_a_run_keeps_the_version_it_started_with_whatever_happens_to_the_file(store,
                                                                              tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(GOOD)
    assert policy_for_run(store, "run-1", path).batching.max_files == 10

    path.write_text(EDITED)
    assert policy_for_run(store, "run-1", path).batching.max_files == 10  # pinned
    path.write_text(BROKEN)
    assert policy_for_run(store, "run-1", path).batching.max_files == 10  # cannot fail it

    path.write_text(EDITED)
    assert policy_for_run(store, "run-2", path).batching.max_files == 20  # a new run: now


def test_a_run_never_starts_on_a_broken_policy(store, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    with pytest.raises(PolicyError, match="policy.yaml"):
        policy_for_run(store, "run-1", path)


def test_ticks_use_the_last_valid_version_while_the_file_is_broken(store, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    with pytest.raises(PolicyError):  # no valid version yet: nothing to fall back on
        policy_for_ticks(store, path)

    path.write_text(GOOD)
    policy, problem = policy_for_ticks(store, path)
    assert (policy.batching.max_files, problem) == (10, None)

    path.write_text("batching:\n  max_files: many\n")
    policy, problem = policy_for_ticks(store, path)
    assert policy.batching.max_files == 10
    assert problem is not None
    assert "policy.yaml" in str(problem) and "batching.max_files" in str(problem)


def test_each_change_of_policy_version_is_in_the_audit_trail(store, tmp_path):
    from media_assets.records.audit import read_audit
    from media_assets.records.policy_versions import keep_version

    first = keep_version(store, GOOD.encode())
    assert keep_version(store, GOOD.encode()) == first  # the same file again: no new record
    second = keep_version(store, EDITED.encode())
    changes = read_audit(store).filter(read_audit(store)["action"] == "policy_change")
    assert changes.select("from", "to").rows() == [(None, first), (first, second)]
