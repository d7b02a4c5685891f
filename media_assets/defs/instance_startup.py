"""A Dagster instance on SQLite, built faster: Dagster's migration scripts are parsed once
per process instead of once per instance.

Each sensor tick that has resources, and each run, builds a `DagsterInstance` from its ref;
on SQLite its storages check their schema against the newest migration by parsing every
Alembic script Dagster ships (`ScriptDirectory.from_config`, ~0.1 s of CPU per storage). A
code server whose inbox sensor ticks every 5 s spent a third of its CPU there (py-spy, a
1000-photo flood: ~5 CPU-s of the two cores the flood needed). The scripts are files of the
installed dagster package and cannot change while the process lives, so their parsed form
is kept and reused. Only Dagster's own script folders are cached; every other use of Alembic
is untouched. Without Alembic's classmethod (a future release), nothing is patched.
"""

from __future__ import annotations

import threading
from typing import Any

_parsed: dict[tuple[str, tuple[str, ...]], Any] = {}
_lock = threading.Lock()


def cache_dagster_migration_scripts() -> bool:
    """Make `ScriptDirectory.from_config` reuse the parsed scripts of Dagster's storages;
    True when installed (idempotent)."""
    from alembic.script import ScriptDirectory

    current = ScriptDirectory.__dict__.get("from_config")
    if not isinstance(current, classmethod):
        return False
    if getattr(current.__func__, "_media_assets_cached", False):
        return True
    parse = current.__func__

    def from_config(cls: type[ScriptDirectory], config: Any) -> ScriptDirectory:
        location = str(config.get_main_option("script_location") or "")
        if not location.startswith("dagster:"):  # a package resource of dagster's
            return parse(cls, config)
        key = (location, tuple(config.get_version_locations_list() or ()))
        with _lock:
            if key not in _parsed:
                _parsed[key] = parse(cls, config)
            return _parsed[key]

    from_config._media_assets_cached = True
    from_config.uncached = parse
    ScriptDirectory.from_config = classmethod(from_config)  # type: ignore[method-assign,assignment]
    return True

