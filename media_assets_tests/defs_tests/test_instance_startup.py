"""Dagster's migration scripts are parsed once per process (a SQLite instance is built at
every sensor tick and run), with the same answers, and only Dagster's own are kept."""

from pathlib import Path

import dagster._core.storage.runs.sqlite.sqlite_run_storage as sqlite_runs
from alembic.config import Config
from alembic.script import ScriptDirectory
from dagster import DagsterInstance
from dagster._core.storage.sql import get_alembic_config

import media_assets.defs  # noqa: F401 (installs the cache, as the code location does)


def test_dagsters_scripts_are_parsed_once_and_name_the_same_newest_migration():
    config = get_alembic_config(sqlite_runs.__file__)
    first, again = ScriptDirectory.from_config(config), ScriptDirectory.from_config(config)
    assert first is again
    fresh = ScriptDirectory.from_config.uncached(ScriptDirectory, config)
    assert fresh is not first
    assert first.as_revision_number("head") == fresh.as_revision_number("head")


def test_other_alembic_projects_are_not_cached(tmp_path: Path):
    (tmp_path / "versions").mkdir()
    (tmp_path / "script.py.mako").write_text("")
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    assert ScriptDirectory.from_config(config) is not ScriptDirectory.from_config(config)


def test_instances_built_again_and_again_still_read_and_write(tmp_path: Path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        ref = instance.get_ref()
        instance.add_dynamic_partitions("batches", ["a"])
    for key in ("b", "c"):
        with DagsterInstance.from_ref(ref) as instance:
            instance.add_dynamic_partitions("batches", [key])
    with DagsterInstance.from_ref(ref) as instance:
        assert instance.get_dynamic_partitions("batches") == ["a", "b", "c"]
