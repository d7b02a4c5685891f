"""Command line: look files up, show what is stale, compact or reconcile the catalog, remove
temp files that killed runs left.

    python -m media_assets lookup NAME_OR_CONTENT_ID
    python -m media_assets stale
    python -m media_assets compact
    python -m media_assets reconcile
    python -m media_assets clean-temp [--dry-run]

The store and policy come from --store/--policy or MEDIA_ASSETS_STORE/MEDIA_ASSETS_POLICY.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from media_assets.core.policy import Policy, load_policy
from media_assets.operations.housekeeping import remove_stale_temp_files
from media_assets.records.catalog import (
    compact,
    find,
    read_arrivals,
    read_catalog,
    stale_derivatives,
)
from media_assets.records.manifest import quarantine_records
from media_assets.records.policy_versions import last_valid_policy
from media_assets.records.provenance import provenance
from media_assets.records.reconcile import reconcile
from media_assets.storage import LocalObjectStore
from media_assets.storage.urls import is_s3_url


def exit_now(status: int) -> NoReturn:
    """Exit with `status` once stdout and stderr are flushed, skipping the interpreter's
    teardown: pyarrow's and polars' thread pools have been seen to abort there ("terminate
    called without an active exception", status 134) after a correct result, which would
    make a clean verification look failed to cron or CI."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def open_store(root: str) -> Any:
    """A folder, or an s3:// URL (connection from MEDIA_ASSETS_S3_* and AWS_* variables)."""
    if not is_s3_url(root):
        return LocalObjectStore(root)
    from media_assets.defs.resources import MediaStorage  # imports dagster: only for S3

    return MediaStorage.from_environment(root).backend()


def _policy(path: str | None, store: Any) -> Policy:
    """The policy named (which must load), else the one in this folder, else the last valid
    version the pipeline kept in the store, else the built-in defaults: the tools work from
    any folder, and say on stderr which policy they use."""
    if path:
        return load_policy(path)
    if Path("policy.yaml").is_file():
        return load_policy("policy.yaml")
    kept = last_valid_policy(store)
    if kept is not None:
        print(f"policy: the store's last valid version ({kept.source_digest}); set --policy "
              "or MEDIA_ASSETS_POLICY to use a file", file=sys.stderr)
        return kept
    print("policy: the built-in defaults (no --policy, MEDIA_ASSETS_POLICY, ./policy.yaml or "
          "version in the store)", file=sys.stderr)
    return Policy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media_assets", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=os.environ.get("MEDIA_ASSETS_STORE", "data/store"))
    parser.add_argument("--policy", default=os.environ.get("MEDIA_ASSETS_POLICY"),
                        help="policy file (default: MEDIA_ASSETS_POLICY, else ./policy.yaml, "
                             "else the last valid version in the store, else the defaults)")
    commands = parser.add_subparsers(dest="command", required=True)
    lookup = commands.add_parser("lookup", help="a file's batch, run, derivatives and row")
    lookup.add_argument("query", help="source name or content id (8+ hex digits)")
    commands.add_parser("stale", help="derivatives whose spec changed (a dry run of rebuild)")
    commands.add_parser("compact", help="rewrite the catalog index")
    commands.add_parser("reconcile", help="compare the store with the catalog")
    clean = commands.add_parser("clean-temp", help="remove temp files killed runs left, once "
                                "idle for the policy's limits.temp_max_age_seconds")
    clean.add_argument("--dry-run", action="store_true", help="only list them")
    args = parser.parse_args(argv)
    store = open_store(args.store)

    if args.command == "lookup":
        matches = find(store, args.query)
        for row in matches.iter_rows(named=True):
            if row["status"] != "ok":
                row["quarantine_record"] = quarantine_records(store, row["batch_key"]).get(
                    row["content_id"])
            # what the lookup_file job shows: the spec behind each hash, the runs, the tier
            row["provenance"] = provenance(store, matches, row)
            kept = row["original_key"] or row["quarantine_key"]
            if kept and store.tier(kept):  # never a dead path for a purged original
                row["original_path"] = store.describe(kept)
            print(json.dumps(row, default=str, indent=1))
        if matches.is_empty():
            print(f"nothing in the catalog matches {args.query!r}", file=sys.stderr)
            return 1
    elif args.command == "stale":
        stale = stale_derivatives(read_arrivals(store), _policy(args.policy, store))
        summary = stale.group_by("derivative", "state", "batch_key").len().sort("batch_key")
        print(summary if summary.height else "every derivative matches the current policy")
    elif args.command == "compact":
        print(json.dumps(compact(store, datetime.now(UTC)) | {"fragments": "..."}, indent=1))
    elif args.command == "reconcile":
        found = reconcile(store, read_catalog(store))
        print(json.dumps(found.summary(), indent=1))
        return 0 if found.clean else 2
    elif args.command == "clean-temp":
        max_age = _policy(args.policy, store).limits.temp_max_age_seconds
        sweep = remove_stale_temp_files(store.root, now=datetime.now(UTC),
                                        max_age_seconds=max_age, dry_run=args.dry_run)
        print(json.dumps({"dry_run": args.dry_run, "max_age_seconds": max_age,
                          "removed": [item.__dict__ for item in sweep.removed],
                          "removed_bytes": sweep.removed_bytes,
                          "kept_recent": [item.path for item in sweep.kept]}, indent=1))
    return 0


if __name__ == "__main__":
    exit_now(main())
