"""Asset checks per batch. Each names the failing files in its metadata; only a batch-wide
failure (the store unreadable) is blocking. Per-file problems quarantine, never fail a batch."""


import os
from collections.abc import Iterable
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from media_assets.codec.intake import hash_file
from media_assets.defs.catalog import catalog
from media_assets.defs.common import batch_files, require_intake, stored_files
from media_assets.defs.partitions import batch_partitions
from media_assets.defs.resources import AlertNotifier, MediaStorage, PolicyResource
from media_assets.operations.alerts import Alert, raise_alert
from media_assets.operations.batch_pass import FIXITY_STEP, VERIFIED_STEP
from media_assets.operations.rollout import inspect_derivative
from media_assets.records.catalog import read_batch_fragment
from media_assets.records.layout import spec_output_key
from media_assets.records.manifest import load_step_results
from media_assets.records.retention import purged_contents


def check_result(context: AssetCheckExecutionContext, failures: dict[str, str], checked: int,
                 **extra: Any) -> AssetCheckResult:
    """One batch's verdict, saying which batch and what it judged. Dagster's check list
    shows a check failed while any batch's latest result failed, and the check's "latest
    execution" is the newest of any batch (often one with nothing of its kind to check):
    the description keeps the two views from seeming to disagree."""
    batches = ", ".join(partition_keys(context))
    if failures:
        name, why = next(iter(sorted(failures.items())))
        said = f"batch {batches}: {len(failures)} of {checked} failing, e.g. {name}: {why}"
    elif checked:
        said = f"batch {batches}: all {checked} pass"
    else:
        said = f"batch {batches}: nothing of this kind to check (0 files)"
    return AssetCheckResult(
        passed=not failures,
        severity=AssetCheckSeverity.ERROR,
        description=said,
        metadata={"batch": batches, "checked": checked, "failing": len(failures),
                  "failing_files": MetadataValue.json(failures), **extra},
    )


@asset_check(asset="originals", partitions_def=batch_partitions, blocking=True,
             description="The store is readable and writable and holds the batch manifest.")
def store_is_usable(context: AssetCheckExecutionContext, storage: MediaStorage,
                    alerts: AlertNotifier) -> AssetCheckResult:
    store = storage.store()
    problems = {}
    root = getattr(store, "root", None)
    if root is not None and not os.access(root, os.R_OK | os.W_OK):
        problems["store"] = f"{root} is not readable and writable"
    for key in partition_keys(context):
        try:
            require_intake(store, key)
        except Exception as exc:  # noqa: BLE001 - reported as the check's finding
            problems[key] = str(exc)
    if problems:  # blocking: the batch's derivatives wait, so say so at once
        raise_alert(store, Alert("check:store_is_usable", "; ".join(
            f"{k}: {v}" for k, v in sorted(problems.items())), details={"run": context.run.run_id}),
            alerts.notifier(), actor="store_is_usable", run_id=context.run.run_id)
    return check_result(context, problems, checked=1)


@asset_check(asset="originals", partitions_def=batch_partitions,
             description="Every stored original still hashes to its content id (re-hashed "
                         "as it was stored, in the same run; read again otherwise).")
def originals_fixity(context: AssetCheckExecutionContext,
                     storage: MediaStorage) -> AssetCheckResult:
    store = storage.store()
    failures, checked, skipped = {}, 0, {}
    purged = purged_contents(store)
    for key in partition_keys(context):
        files = stored_files(require_intake(store, key), ("image", "video", "audio", "sidecar"))
        just_verified = _this_run(store, key, FIXITY_STEP, context.run.run_id)
        hashed = set(just_verified.get("content_ids", []))
        for cid, entry in files.items():
            if cid in purged:
                skipped[entry["source_name"]] = f"original purged: {purged[cid]}"
                continue
            checked += 1
            if cid in hashed:
                continue  # stored and re-hashed by this run's pass a moment ago
            if not store.exists(entry["original_key"]):
                failures[entry["source_name"]] = "original missing from the store"
                continue
            with store.local_path(entry["original_key"]) as path:
                if hash_file(path) != cid:
                    failures[entry["source_name"]] = "bytes no longer match the content id"
    return check_result(context, failures, checked, skipped_purged=MetadataValue.json(skipped))


def _derivative_check(asset_name: str, derivative: str):
    @asset_check(asset=asset_name, name=f"{asset_name}_conform_to_spec",
                 partitions_def=batch_partitions,
                 description=f"Every {derivative} decodes and respects its current spec.")
    def _check(context: AssetCheckExecutionContext, storage: MediaStorage,
               policy: PolicyResource) -> AssetCheckResult:
        store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
        failures, checked = {}, 0
        for key in partition_keys(context):
            images = batch_files(store, key, ("image",))
            # The outputs this run's pass rendered were checked from the bytes in hand.
            recorded = _this_run(store, key, VERIFIED_STEP, context.run.run_id).get(
                asset_name, {})
            for cid, entry in images.items():
                checked += 1
                spec = rules.derivative_for(derivative, cid)  # a canary's, where one runs
                verdicts = recorded.get(cid, {})
                problem = verdicts[spec.spec_hash] if spec.spec_hash in verdicts else \
                    inspect_derivative(store, spec_output_key(spec, cid), spec)
                if problem:
                    failures[entry["source_name"]] = problem
        return check_result(context, failures, checked, spec_hash=rules.spec_stamp(derivative))

    return _check


thumbnails_conform = _derivative_check("thumbnails", "thumbnail")
previews_conform = _derivative_check("previews", "preview")


@asset_check(asset=catalog, partitions_def=batch_partitions,
             description="The batch's catalog rows match its files one to one.")
def catalog_matches_batch(context: AssetCheckExecutionContext,
                          storage: MediaStorage) -> AssetCheckResult:

    store = storage.store()
    failures, checked = {}, 0
    for key in partition_keys(context):
        manifest = require_intake(store, key)
        expected = {(f["source_name"], f.get("content_id") or "unknown")
                    for f in manifest["files"]}
        frame = read_batch_fragment(store, key, ["source_name", "content_id"])
        rows: set[tuple[str, str]] = set(frame.iter_rows()) if frame is not None else set()
        checked += len(expected)
        failures.update({name: "no catalog row" for name, _ in expected - rows})
        failures.update({name: "catalog row for a file not in the batch"
                         for name, _ in rows - expected})
    return check_result(context, failures, checked)


def _this_run(store: Any, batch_key: str, step: str, run_id: str) -> dict[str, Any]:
    """What the pass recorded for the checks, if it ran in this run (else nothing)."""
    recorded = load_step_results(store, batch_key, step)
    return recorded if recorded.get("run_id") == run_id else {}


def partition_keys(context: AssetCheckExecutionContext) -> Iterable[str]:
    return context.partition_keys if context.has_partition_key_range else [context.partition_key]


batch_checks = [store_is_usable, originals_fixity, thumbnails_conform, previews_conform,
                catalog_matches_batch]
