"""Change the policy from the dashboard: `propose_policy_change` (validate, diff, what goes
stale), `apply_policy_change` (a second step, optionally by a second person) and
`rollback_policy` (any kept version). Sensors and runs pick the active version up at their
next tick or start, without a restart (`records/policy_versions.py`)."""

from datetime import UTC, datetime

from dagster import Config, Failure, MetadataValue, OpExecutionContext, job, op
from pydantic import Field

from media_assets.core.policy import PolicyError, policy_digest, read_policy_bytes
from media_assets.defs.common import table
from media_assets.defs.resources import MediaStorage, PolicyResource
from media_assets.operations.policy_change import (
    PolicyChangeRefused,
    apply,
    propose,
    roll_back,
)
from media_assets.records.audit import read_audit
from media_assets.records.policy_versions import Activation, active_policy_bytes

POLICY_ACTIONS = ("policy_change", "policy_apply", "policy_rollback")


class ProposeConfig(Config):
    patch: str = Field(default="derivatives:\n  thumbnail: {long_edge: 250, format: webp, "
                               "quality: 85}\n",
                       description="YAML of only the keys to change (laid over the active "
                                   "policy). The example raises the thumbnails' quality.")
    yaml: str = Field(default="", description="Or the whole policy (replaces it).")
    reason: str = Field(default="", description="Why: kept with the version.")
    proposed_by: str = Field(default="", description="Your name (declared, not proven).")


class ApplyConfig(Config):
    proposal_id: str = Field(description="From propose_policy_change's output.")
    approved_by: str = Field(description="Your name; a different one than the proposer's "
                                         "when governance.require_second_approver is on.")


class RollbackConfig(Config):
    version: str = Field(description="At least 6 characters of the version's digest (see "
                                     "the history in any of these jobs' output).")
    reason: str = Field(description="Why.")
    by: str = Field(description="Your name.")


def _refused(exc: Exception) -> Failure:
    return Failure(str(exc), allow_retries=False)


def _history(store) -> MetadataValue:
    audit = read_audit(store)
    rows = audit.filter(audit["action"].is_in(POLICY_ACTIONS)).to_dicts() if audit.height \
        else []
    return table([{"time": r["time"], "action": r["action"], "from": r["from"] or "",
                   "to": r["to"] or "", "by": r["actor"], "why": r["reason"] or ""}
                  for r in rows[-20:]],
                 [("time", "string"), ("action", "string"), ("from", "string"),
                  ("to", "string"), ("by", "string"), ("why", "string")])


@op(description="Validate a policy change as the file is validated; show its diff and the "
                "derivatives it makes stale; keep it as a proposal.")
def propose_op(context: OpExecutionContext, config: ProposeConfig, storage: MediaStorage,
               policy: PolicyResource) -> None:
    store = storage.store()
    policy.for_tick(storage)  # a changed file becomes the active version first
    current, _, _ = active_policy_bytes(store, policy.path)
    try:
        proposal = propose(store, current, config.yaml, config.patch,
                           proposed_by=config.proposed_by, reason=config.reason,
                           now=datetime.now(UTC))
    except (PolicyError, PolicyChangeRefused) as exc:
        raise _refused(exc) from None
    context.add_output_metadata({
        "proposal_id": proposal.proposal_id,
        "active_version": proposal.base_digest, "proposed_version": proposal.digest,
        "diff": MetadataValue.md(f"```diff\n{proposal.diff}```"),
        "makes_stale": MetadataValue.json(list(proposal.stale)),
        "next": f"apply_policy_change with proposal_id: {proposal.proposal_id}",
        "history": _history(store),
    })
    context.log.info(f"proposal {proposal.proposal_id} by {proposal.proposed_by}: "
                     f"{proposal.reason}; stale: {list(proposal.stale) or 'nothing'}")


@op(description="Make a proposal the active policy (sensors and new runs use it at once).")
def apply_op(context: OpExecutionContext, config: ApplyConfig, storage: MediaStorage,
             policy: PolicyResource) -> None:
    store = storage.store()
    rules = policy.for_tick(storage)
    try:
        active = apply(store, config.proposal_id, approved_by=config.approved_by, rules=rules,
                       file_digest=_file_digest(policy), now=datetime.now(UTC))
    except (PolicyError, PolicyChangeRefused) as exc:
        raise _refused(exc) from None
    _report(context, store, active)


@op(description="Re-activate an earlier policy version.")
def rollback_op(context: OpExecutionContext, config: RollbackConfig, storage: MediaStorage,
                policy: PolicyResource) -> None:
    store = storage.store()
    policy.for_tick(storage)
    try:
        active = roll_back(store, config.version, by=config.by, reason=config.reason,
                           file_digest=_file_digest(policy), now=datetime.now(UTC))
    except (PolicyError, PolicyChangeRefused) as exc:
        raise _refused(exc) from None
    _report(context, store, active)


def _file_digest(policy: PolicyResource) -> str:
    """The file's digest now: a dashboard version stays active until the file changes."""
    try:
        return policy_digest(read_policy_bytes(policy.path)) if policy.path else "defaults"
    except PolicyError:
        return "unreadable"


def _report(context: OpExecutionContext, store, active: Activation) -> None:
    context.add_output_metadata({"active_version": active.digest, "by": active.by,
                                 "why": active.why, "history": _history(store)})
    context.log.info(f"policy version {active.digest} is active ({active.by}: {active.why})")


@job(description="Propose a policy change (a patch of the keys to change, or the whole "
                 "YAML): validated, diffed, stale derivatives listed. Apply it with "
                 "apply_policy_change.")
def propose_policy_change():
    propose_op()


@job(description="Apply a proposed policy change; sensors and new runs use it from their "
                 "next tick or start.")
def apply_policy_change():
    apply_op()


@job(description="Roll the policy back to any earlier version (by its digest).")
def rollback_policy():
    rollback_op()


policy_jobs = [propose_policy_change, apply_policy_change, rollback_policy]
