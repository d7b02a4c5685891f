"""The README's table of assets (group, owner, kinds, what it holds), generated from the
definitions: `python -m media_assets.asset_table --write README.md` refreshes it; a test
fails when the README's copy is stale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

START, END = "<!-- asset-table:start -->", "<!-- asset-table:end -->"
GROUP_ORDER = ("ingest", "derivatives", "catalog", "archive", "maintenance")


def render() -> str:
    from media_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    nodes = [graph.get(key) for key in graph.get_all_asset_keys()]
    nodes.sort(key=lambda n: (GROUP_ORDER.index(n.group_name), n.key.to_user_string()))
    lines = ["| asset | group | owner | kinds | partitioned by | what it holds |",
             "|---|---|---|---|---|---|"]
    for node in nodes:
        summary = " ".join((node.description or "").split()).split(". ")[0].rstrip(".")
        partitions = "batch" if node.partitions_def and getattr(
            node.partitions_def, "name", None) == "batches" else ("day" if node.partitions_def
                                                                  else "—")
        lines.append(f"| `{node.key.to_user_string()}` | {node.group_name} | "
                     f"{', '.join(node.owners)} | {', '.join(sorted(node.kinds))} | "
                     f"{partitions} | {summary} |")
    return "\n".join(lines)


def replace_in(text: str, table: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="the file whose table to refresh")
    args = parser.parse_args(argv)
    table = render()
    if args.write:
        args.write.write_text(replace_in(args.write.read_text(), table))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
