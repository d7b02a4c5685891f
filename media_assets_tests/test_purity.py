"""The pure core never imports Dagster: codec work, records and operations can be used and
tested without an orchestrator (and run in worker processes that never pay its import)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import media_assets

PURE_PACKAGES = ("core", "codec", "records", "operations", "storage")


def pure_modules() -> list[str]:
    root = Path(media_assets.__file__).parent
    found = []
    for package in PURE_PACKAGES:
        found.append(f"media_assets.{package}")
        for info in pkgutil.walk_packages([str(root / package)], f"media_assets.{package}."):
            found.append(info.name)
    return found


def test_every_core_package_has_modules() -> None:
    names = pure_modules()
    for package in PURE_PACKAGES:
        assert any(n.startswith(f"media_assets.{package}.") for n in names), package


def test_no_core_module_loads_dagster() -> None:
    """Each module imported alone in a fresh interpreter leaves `dagster` unloaded."""
    script = (
        "import importlib, json, sys\n"
        "bad = {}\n"
        f"for name in {pure_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "    loaded = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')"
        " or m.startswith('dagster_'))\n"
        "    if loaded:\n"
        "        bad[name] = loaded[:3]\n"
        "        break\n"
        "print(json.dumps(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {}


def test_the_core_depends_on_nothing_else_of_the_project() -> None:
    """core/ (policy, store interfaces, errors) is what every other package builds on: it
    imports none of them, so none of them can pull the others in through it."""
    import ast

    core = Path(media_assets.__file__).parent / "core"
    outside = []
    for source in sorted(core.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            outside += [f"{source.name}: {name}" for name in names
                        if name.startswith("media_assets.") and
                        not name.startswith("media_assets.core")]
    assert outside == []
