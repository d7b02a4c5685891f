"""Verify archived catalog days offline, from their manifests alone (no Dagster, no store):

    python -m media_assets.archive verify PATH

PATH is a day folder (`.../archive/catalog/date=2026-11-27`), its manifest.json, or any folder
above (every day under it is verified). Exit status 0 when every file's size, SHA-256, row
count, schema and content ids match the manifest; 1 with one line per mismatch otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from media_assets.cli import exit_now
from media_assets.records.archive import day_folders, verify_day


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m media_assets.archive",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="recompute checksums and row counts")
    verify.add_argument("path", type=Path)
    args = parser.parse_args(argv)

    folders = list(day_folders(args.path))
    if not folders:
        print(f"error: no archived day (manifest.json) under {args.path}", file=sys.stderr)
        return 1
    failed = 0
    for folder in folders:
        problems = verify_day(folder)
        if problems:
            failed += 1
            for problem in problems:
                print(f"MISMATCH {problem}", file=sys.stderr)
        else:
            print(f"ok {folder}")
    if failed:
        print(f"error: {failed} of {len(folders)} archived days do not match their manifests",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    exit_now(main())  # the status decided above, whatever the teardown of pyarrow would do
