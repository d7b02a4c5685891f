"""Policy versions in the store: a run uses one policy, and ticks survive a broken file.

Each valid policy file read is kept by its digest (`control/policy/versions/<digest>.yaml`,
put-if-absent). A run's first read pins its version (`control/policy/runs/<run id>.json`);
every later step of the run, in this process or another (multiprocess, Celery, Kubernetes),
reads that version, so an edit mid-run cannot fail or change it; a re-run (a new run id)
takes the file as it is then. Sensors and schedules read the file each tick; when it is
invalid they go on with the last valid version and report the file's problem."""

from __future__ import annotations

import json
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
LAST_VALID_KEY = "control/policy/last_valid.json"


def version_key(digest: str) -> str:
    return f"{VERSIONS_PREFIX}{digest}.yaml"


def run_pin_key(run_id: str) -> str:
    return f"control/policy/runs/{run_id}.json"


def keep_version(store: Any, data: bytes) -> str:
    """Keep a valid policy file's bytes by digest and make it the last valid one; a change
    of version goes into the audit trail (from and to digests)."""
    digest = policy_digest(data)
    store.put_bytes_if_absent(version_key(digest), data)
    before = _last_valid_digest(store)
    if before != digest:
        store.put_bytes(LAST_VALID_KEY, json.dumps({"digest": digest}).encode())
        append(store, [audit_record("policy_change", "-", source=before, target=digest,
                                    reason="the policy file changed", actor="policy file")])
    return digest


def _last_valid_digest(store: Any) -> str | None:
    if not store.exists(LAST_VALID_KEY):
        return None
    return json.loads(store.read_bytes(LAST_VALID_KEY))["digest"]


def _version(store: Any, digest: str, source: str) -> Policy:
    return parse_policy(store.read_bytes(version_key(digest)), f"{source} (version {digest})")


def last_valid_policy(store: Any) -> Policy | None:
    """The last valid policy a tick or run read (None when none was kept yet)."""
    digest = _last_valid_digest(store)
    return _version(store, digest, "the store") if digest else None


def policy_for_run(store: Any, run_id: str, path: str | Path) -> Policy:
    """The run's policy: the version its first read pinned, else the file now (which must be
    valid: a run never starts on a broken policy), pinned for the rest of the run."""
    pin = run_pin_key(run_id)
    if not store.exists(pin):
        data = read_policy_bytes(path)
        parse_policy(data, str(path))  # refuse a broken file before pinning it
        store.put_bytes_if_absent(pin, json.dumps({"digest": keep_version(store, data)})
                                  .encode())
    # another step process may have pinned first: the pin decides
    return _version(store, json.loads(store.read_bytes(pin))["digest"], str(path))


def policy_for_ticks(store: Any, path: str | Path) -> tuple[Policy, PolicyError | None]:
    """The file's policy for a sensor or schedule tick, and (when the file is invalid) the last
    valid version with the file's problem; raises when there is no valid version at all."""
    try:
        data = read_policy_bytes(path)
        policy = parse_policy(data, str(path))
    except PolicyError as problem:
        digest = _last_valid_digest(store)
        if digest is None:
            raise
        return _version(store, digest, str(path)), problem
    keep_version(store, data)
    return policy, None
