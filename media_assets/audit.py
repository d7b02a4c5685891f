"""Verify the audit trail: every record's hash, every link, each day's object numbers and
each day's head against the anchor in that day's archive manifest:

    python -m media_assets.audit verify [--store ROOT]

ROOT is the store (a folder or an s3:// URL; default $MEDIA_ASSETS_STORE, else data/store).
Exit status 0 when the chain holds; 1 with one line per problem (the object and line of an
edited, removed or reordered record, or a day truncated or rewritten since it was anchored).
"""

from __future__ import annotations

import argparse
import os
import sys

from media_assets.cli import exit_now, open_store
from media_assets.records.archive import audit_anchors
from media_assets.records.audit import verify_chain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media_assets.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="walk the chain and check the anchors")
    verify.add_argument("--store", default=os.environ.get("MEDIA_ASSETS_STORE", "data/store"))
    args = parser.parse_args(argv)

    store = open_store(args.store)
    anchors = audit_anchors(store)
    report = verify_chain(store, anchors)
    for problem in report.problems:
        print(f"TAMPERED {problem}", file=sys.stderr)
    note = (f"; {report.unchained_objects} objects written before the chain (not verifiable)"
            if report.unchained_objects else "")
    if report.problems:
        print(f"error: {len(report.problems)} problems in {report.records} audit records over "
              f"{report.days} days{note}", file=sys.stderr)
        return 1
    print(f"ok {report.records} audit records over {report.days} days, {len(anchors)} days "
          f"anchored in the archive{note}")
    return 0


if __name__ == "__main__":
    exit_now(main())  # the status decided above, whatever the teardown of pyarrow would do
