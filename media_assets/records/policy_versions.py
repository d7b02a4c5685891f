"""Policy versions in the store: one active version, changed from the file or the dashboard;
a run uses one policy, and ticks survive a broken file.

Each valid policy read is kept by its digest (`control/policy/versions/<digest>.yaml`,
put-if-absent). One version is *active* (`control/policy/active.json`: digest, who, when,
why, and the digest of `policy.yaml` at that moment). Precedence between the file in git and
the dashboard's jobs (`defs/policy_jobs.py`):

- the file seeds the first version, and whenever its bytes change (a deploy, an edit on the
  server) its version becomes the active one;
- a version applied or rolled back from the dashboard stays active until the file changes
  again (the file is not rewritten: put the change in git to keep it through the next edit).

A run's first read pins the active version (`control/policy/runs/<run id>.json`); every later
step of the run, in any process, reads that version, so a change mid-run cannot fail or alter
it. Sensors and schedules read the active version each tick; when the file has changed into
something invalid they go on with the active version and report the file's problem. Every
change of active version is an audit record (from, to, who, why)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from media_assets.core.policy import (
    Policy,
    PolicyError,
    parse_policy,
    policy_digest,
    read_policy_bytes,
)
from media_assets.records.audit import append, audit_record

VERSIONS_PREFIX = "control/policy/versions/"
ACTIVE_KEY = "control/policy/active.json"
FILE_ACTOR = "policy file"


def version_key(digest: str) -> str:
    return f"{VERSIONS_PREFIX}{digest}.yaml"


def run_pin_key(run_id: str) -> str:
    return f"control/policy/runs/{run_id}.json"


@dataclass(frozen=True)
class Activation:
    """Which version is active, since when, by whom and why."""

    digest: str
    activated_at: str
    by: str
    why: str
    file_digest: str  # the file's digest when it was activated: a later edit takes over

    @classmethod
    def read(cls, store: Any) -> Activation | None:
        if not store.exists(ACTIVE_KEY):
            return None
        return cls(**json.loads(store.read_bytes(ACTIVE_KEY)))


def keep_bytes(store: Any, data: bytes) -> str:
    """Keep a valid policy's bytes by digest (idempotent); returns the digest."""
    digest = policy_digest(data)
    store.put_bytes_if_absent(version_key(digest), data)
    return digest


def activate(store: Any, digest: str, *, by: str, why: str, file_digest: str,
             action: str = "policy_change", now: datetime | None = None) -> Activation:
    """Make a kept version the active one, and say so in the audit trail."""
    if not store.exists(version_key(digest)):
        raise KeyError(f"no policy version {digest} in the store")
    before = Activation.read(store)
    activation = Activation(digest, (now or datetime.now(UTC)).isoformat(), by, why,
                            file_digest)
    store.put_bytes(ACTIVE_KEY, json.dumps(activation.__dict__, sort_keys=True).encode())
    if before is None or before.digest != digest:
        append(store, [audit_record(action, "-", source=before.digest if before else None,
                                    target=digest, reason=why, actor=by, now=now)])
    return activation


def keep_version(store: Any, data: bytes) -> str:
    """A valid policy file read: keep it and, when the file changed, make it active."""
    digest = keep_bytes(store, data)
    active = Activation.read(store)
    if active is None or active.file_digest != digest:
        activate(store, digest, by=FILE_ACTOR, why="the policy file changed",
                 file_digest=digest)
    return digest


def _version(store: Any, digest: str, source: str) -> Policy:
    return parse_policy(store.read_bytes(version_key(digest)), f"{source} (version {digest})")


def version_bytes(store: Any, digest: str) -> bytes:
    return store.read_bytes(version_key(digest))


def find_version(store: Any, prefix: str) -> str:
    """The one kept version whose digest starts with `prefix` (at least 6 characters)."""
    if len(prefix) < 6:
        raise KeyError(f"{prefix!r}: give at least 6 characters of a version's digest")
    found = [k.removeprefix(VERSIONS_PREFIX).removesuffix(".yaml")
             for k in store.list(VERSIONS_PREFIX) if k.endswith(".yaml")]
    matches = [d for d in found if d.startswith(prefix)]
    if len(matches) != 1:
        raise KeyError(f"{prefix!r} names {len(matches)} kept versions (of {len(found)})")
    return matches[0]


def last_valid_policy(store: Any) -> Policy | None:
    """The active version (None when none was kept yet)."""
    active = Activation.read(store)
    return _version(store, active.digest, "the store") if active else None


def active_policy_bytes(store: Any, path: str | Path) -> tuple[bytes, str, bool]:
    """The policy in force now: (its bytes, where they come from, whether that is the file).
    The file, when it is new or changed since the active version was set; else the active
    version (which the dashboard may have changed)."""
    data = read_policy_bytes(path)
    active = Activation.read(store)
    if active is None or active.file_digest != policy_digest(data):
        return data, str(path), True
    return version_bytes(store, active.digest), f"the active version (by {active.by})", False


def policy_for_run(store: Any, run_id: str, path: str | Path) -> Policy:
    """The run's policy: the version its first read pinned, else the one in force now (which
    must be valid: a run never starts on a broken policy), pinned for the rest of the run."""
    pin = run_pin_key(run_id)
    if not store.exists(pin):
        data, source, from_file = active_policy_bytes(store, path)
        parse_policy(data, source)  # refuse a broken file before pinning it
        digest = keep_version(store, data) if from_file else policy_digest(data)
        store.put_bytes_if_absent(pin, json.dumps({"digest": digest}).encode())
    # another step process may have pinned first: the pin decides
    return _version(store, json.loads(store.read_bytes(pin))["digest"], str(path))


def policy_for_ticks(store: Any, path: str | Path) -> tuple[Policy, PolicyError | None]:
    """The policy in force for a sensor or schedule tick, and (when the file changed into
    something invalid) the active version with the file's problem; raises when there is no
    valid version at all."""
    try:
        data, source, from_file = active_policy_bytes(store, path)
        policy = parse_policy(data, source)
    except PolicyError as problem:
        active = Activation.read(store)
        if active is None:
            raise
        return _version(store, active.digest, str(path)), problem
    if from_file:
        keep_version(store, data)
    return policy, None
