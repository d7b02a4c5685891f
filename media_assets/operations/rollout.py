"""Safe rollout of a derivative spec: a canary on a fraction of the contents, compared with the
stable spec on the same files, then promoted or rolled back in the policy; every transition
goes to the audit log; outputs of specs nothing refers to any more are collected. Pure.

Derivatives are stored by spec hash (`derived/NAME/HASH/...`), so two specs coexist: a
content in the canary keeps its stable output too, and a rollback renders nothing."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from media_assets.codec.derivatives.image import image_output_problem
from media_assets.core.policy import IMAGE_DERIVATIVES, Policy
from media_assets.records.audit import append, audit_record
from media_assets.records.layout import spec_output_key

ROLLOUT_STATE_KEY = "control/rollout.json"
RENDER_MS_STEP = "render_ms"  # batch step results: spec hash -> content id -> milliseconds
DERIVED_PREFIX = "derived/"


def inspect_derivative(store: Any, key: str, spec: Any) -> str | None:
    """What is wrong with an image derivative against its spec (None: it conforms)."""
    if not store.exists(key):
        return "missing"
    with store.local_path(key) as path:
        return image_output_problem(path, spec, full=True)


def compare(store: Any, policy: Policy, name: str, content_ids: Iterable[str],
            render_ms: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    """Stable vs canary on the same files (the canary's contents, which keep both): output
    bytes, check pass rate and render time per file. None when no canary runs for `name`."""
    canary = policy.canaries.get(name)
    if canary is None:
        return None
    stable = policy.derivative(name)
    chosen = [cid for cid in content_ids if policy.in_canary(name, cid)]
    report: dict[str, Any] = {"derivative": name, "fraction": canary.fraction,
                              "canary_files": len(chosen)}
    for label, spec in (("stable", stable), ("canary", canary.spec)):
        keys = [spec_output_key(spec, cid) for cid in chosen]
        sizes = [store.size(k) for k in keys if store.exists(k)]
        passed = sum(inspect_derivative(store, k, spec) is None for k in keys)
        times = [render_ms.get(spec.spec_hash, {}).get(cid) for cid in chosen]
        times = [t for t in times if t is not None]
        report[label] = {
            "spec_hash": spec.spec_hash,
            "mean_bytes": round(statistics.fmean(sizes), 1) if sizes else None,
            "check_pass_rate": round(passed / len(keys), 4) if keys else None,
            "mean_render_ms": round(statistics.fmean(times), 3) if times else None,
        }
    old, new = report["stable"]["mean_bytes"], report["canary"]["mean_bytes"]
    report["bytes_ratio"] = round(new / old, 4) if old and new else None
    return report


@dataclass(frozen=True)
class Transition:
    action: str      # rollout_canary | rollout_promote | rollout_rollback | spec_change
    derivative: str
    reason: str


def transitions(before: dict[str, Any], policy: Policy) -> list[Transition]:
    """What changed in each image derivative's rollout since `before` (the last state seen)."""
    found = []
    for name in IMAGE_DERIVATIVES:
        old, now = before.get(name), _state(policy, name)
        if old is None or old == now:
            continue
        if now["canary"] and now["canary"] != old.get("canary"):
            found.append(Transition("rollout_canary", name,
                                    f"{name}: {now['stable']} -> {now['canary']} for "
                                    f"{now['fraction']:.0%} of files"))
        elif not now["canary"] and old.get("canary") == now["stable"]:
            found.append(Transition("rollout_promote", name,
                                    f"{name}: {now['stable']} for every file "
                                    f"(was {old['stable']})"))
        elif not now["canary"] and old.get("canary") and old["stable"] == now["stable"]:
            found.append(Transition("rollout_rollback", name,
                                    f"{name}: back to {now['stable']} "
                                    f"(canary {old['canary']} withdrawn)"))
        elif now["canary"] and now["fraction"] >= 1 > (old.get("fraction") or 0):
            found.append(Transition("rollout_promote", name,
                                    f"{name}: canary {now['canary']} promoted to every file"))
        elif now["canary"] and now["fraction"] != old.get("fraction"):
            found.append(Transition("rollout_canary", name,
                                    f"{name}: canary {now['canary']} now for "
                                    f"{now['fraction']:.0%} of files"))
        elif now["stable"] != old["stable"]:
            found.append(Transition("spec_change", name,
                                    f"{name}: {old['stable']} -> {now['stable']} for every "
                                    "file, without a canary"))
    return found


def _state(policy: Policy, name: str) -> dict[str, Any]:
    canary = policy.canaries.get(name)
    return {"stable": policy.derivative(name).spec_hash,
            "canary": canary.spec.spec_hash if canary else None,
            "fraction": canary.fraction if canary else None}


def note_rollout(store: Any, policy: Policy, now: datetime, actor: str,
                 run_id: str | None = None) -> list[Transition]:
    """Audit each rollout step the policy took since it was last seen (first sight: none)."""
    before = json.loads(store.read_bytes(ROLLOUT_STATE_KEY)) \
        if store.exists(ROLLOUT_STATE_KEY) else {}
    found = transitions(before, policy)
    state = {name: _state(policy, name) for name in IMAGE_DERIVATIVES}
    if state != before:
        store.put_bytes(ROLLOUT_STATE_KEY, json.dumps(state, sort_keys=True).encode())
    append(store, [audit_record(t.action, "-", source=t.derivative, reason=t.reason,
                                actor=actor, run_id=run_id, now=now) for t in found])
    return found


def referenced_hashes(policy: Policy, view: pl.DataFrame) -> set[str]:
    """Spec hashes still in use: every spec and canary of the policy, and every derivative
    the catalog points at."""
    hashes = {s.spec_hash for kind in ("image", "video", "audio") for s in policy.wanted(kind)}
    hashes |= {s.spec_hash for s in policy.derivatives}
    hashes |= {c.spec.spec_hash for c in policy.canaries.values()}
    hashes |= {policy.audio.waveform.spec_hash, policy.audio.preview.spec_hash}
    if view.height:
        hashes |= set(view.select(pl.col("derivatives").explode().struct.field("spec_hash"))
                      .drop_nulls().to_series())
    return hashes


def unreferenced_derivatives(store: Any, keep: set[str]) -> dict[str, list[str]]:
    """`derived/NAME/HASH/...` objects by `NAME/HASH`, for the hashes not in `keep`."""
    found: dict[str, list[str]] = {}
    for key in store.list(DERIVED_PREFIX):
        parts = key.split("/")
        if len(parts) > 3 and parts[2] not in keep:
            found.setdefault(f"{parts[1]}/{parts[2]}", []).append(key)
    return found
