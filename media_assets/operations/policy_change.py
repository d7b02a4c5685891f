"""Changing the policy from the dashboard: propose (validated exactly as the file is, with
the diff and the derivatives it makes stale), then apply (optionally by a second person), or
roll back to any kept version. Versions and the active one: `records/policy_versions.py`."""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import yaml

from media_assets.core.policy import Policy, parse_policy, policy_digest
from media_assets.records.policy_versions import (
    Activation,
    activate,
    find_version,
    keep_bytes,
    version_bytes,
)

PROPOSALS_PREFIX = "control/policy/proposals/"


class PolicyChangeRefused(ValueError):
    """A change that may not be applied, and why."""


@dataclass(frozen=True)
class Proposal:
    proposal_id: str
    base_digest: str  # the active version it was made against
    digest: str  # the proposed version
    proposed_by: str
    reason: str
    proposed_at: str
    diff: str
    stale: tuple[str, ...]  # derivatives whose spec it changes (they are rebuilt)


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`patch` laid over `base`, mapping by mapping (a value that is not a mapping replaces)."""
    out = dict(base)
    for key, value in patch.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def proposed_bytes(current: bytes, full_yaml: str, patch: str) -> bytes:
    """The proposed policy file: the full text given, else the patch laid over the current."""
    if full_yaml.strip():
        return full_yaml.encode()
    if not patch.strip():
        raise PolicyChangeRefused("give the whole policy (yaml) or a patch of the keys to "
                                  "change")
    patch_map = yaml.safe_load(patch)
    if not isinstance(patch_map, dict):
        raise PolicyChangeRefused("the patch must be a mapping of policy keys, e.g. "
                                  "`batching: {max_files: 500}`")
    return yaml.safe_dump(merged(yaml.safe_load(current) or {}, patch_map),
                          sort_keys=False).encode()


def stale_derivatives(before: Policy, after: Policy) -> tuple[str, ...]:
    """The derivatives whose spec (or canary) differs: what applying would re-render."""
    names = [d.name for d in after.derivatives] + [
        after.video.rendition.name, after.audio.preview.name, after.audio.waveform.name]

    def stamp(policy: Policy, name: str) -> str | None:
        try:
            return policy.spec_stamp(name)
        except KeyError:  # a derivative the other version does not have
            return None

    return tuple(name for name in names if stamp(before, name) != stamp(after, name))


def propose(store: Any, current: bytes, full_yaml: str, patch: str, *, proposed_by: str,
            reason: str, now: datetime) -> Proposal:
    """Validate the change exactly as the file is validated (a PolicyError names each
    problem's key path), keep the proposal in the store, and describe it."""
    if not proposed_by.strip() or not reason.strip():
        raise PolicyChangeRefused("a proposal needs who proposes it and why")
    data = proposed_bytes(current, full_yaml, patch)
    after = parse_policy(data, "the proposed policy")
    before = parse_policy(current, "the active policy")
    if after.model_dump(exclude={"source_digest"}) == \
            before.model_dump(exclude={"source_digest"}):
        raise PolicyChangeRefused("the proposal changes nothing: it is the active policy "
                                  "already")
    keep_bytes(store, data)
    diff = "".join(difflib.unified_diff(
        _normalised(current), _normalised(data), n=2,
        fromfile=f"active {policy_digest(current)}", tofile=f"proposed {policy_digest(data)}"))
    proposal = Proposal(f"{now.strftime('%Y%m%dT%H%M%SZ')}-{policy_digest(data)}",
                        policy_digest(current), policy_digest(data), proposed_by.strip(),
                        reason.strip(), now.isoformat(), diff, stale_derivatives(before, after))
    store.put_bytes(f"{PROPOSALS_PREFIX}{proposal.proposal_id}.json",
                    json.dumps(asdict(proposal)).encode())
    return proposal


def _normalised(data: bytes) -> list[str]:
    """The policy's keys and values as YAML, without comments or layout: the diff shows
    what changes, not how the file was written."""
    return yaml.safe_dump(yaml.safe_load(data) or {}, sort_keys=False,
                          default_flow_style=False).splitlines(keepends=True)


def load_proposal(store: Any, proposal_id: str) -> Proposal:
    key = f"{PROPOSALS_PREFIX}{proposal_id.strip()}.json"
    if not store.exists(key):
        raise PolicyChangeRefused(f"no proposal {proposal_id!r} (see propose_policy_change's "
                                  "output for its id)")
    record = json.loads(store.read_bytes(key))
    return Proposal(**{**record, "stale": tuple(record["stale"])})


def apply(store: Any, proposal_id: str, *, approved_by: str, rules: Policy, file_digest: str,
          now: datetime) -> Activation:
    """Make a proposal the active version: it must have been made against the version active
    now, and (when the policy's governance says so) be approved by someone else."""
    proposal = load_proposal(store, proposal_id)
    if not approved_by.strip():
        raise PolicyChangeRefused("an approval needs the approver's name")
    if rules.governance.require_second_approver and \
            approved_by.strip().casefold() == proposal.proposed_by.casefold():
        raise PolicyChangeRefused(f"{approved_by.strip()} proposed this change; the policy "
                                  "requires a second approver (governance."
                                  "require_second_approver)")
    active = Activation.read(store)
    if active is not None and active.digest != proposal.base_digest:
        raise PolicyChangeRefused(f"the active policy changed since this proposal "
                                  f"({proposal.base_digest} -> {active.digest}); propose "
                                  "again against the version in force")
    parse_policy(version_bytes(store, proposal.digest), "the proposed policy")  # still valid
    return activate(store, proposal.digest, by=f"{proposal.proposed_by} (approved by "
                    f"{approved_by.strip()})", why=proposal.reason, file_digest=file_digest,
                    action="policy_apply", now=now)


def roll_back(store: Any, version: str, *, by: str, reason: str, file_digest: str,
              now: datetime) -> Activation:
    """Re-activate any kept version (named by at least 6 characters of its digest)."""
    if not by.strip() or not reason.strip():
        raise PolicyChangeRefused("a rollback needs who does it and why")
    try:
        digest = find_version(store, version.strip())
    except KeyError as exc:
        raise PolicyChangeRefused(str(exc.args[0])) from None
    parse_policy(version_bytes(store, digest), f"policy version {digest}")
    return activate(store, digest, by=by.strip(), why=reason.strip(), file_digest=file_digest,
                    action="policy_rollback", now=now)
