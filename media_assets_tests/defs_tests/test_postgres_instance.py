"""The instance on PostgreSQL (deploy/dagster.postgres.yaml through dagster-postgres): the
sensor → batch run → catalog flow with run, event-log and schedule storage in a fresh
database. Needs MEDIA_ASSETS_TEST_PG_URL (a server URL; .ci/run sets it and requires it)."""

import os
import shutil
import uuid
from pathlib import Path

import psycopg2
import pytest
from dagster import DagsterInstance

from media_assets.samples import write_sample_images
from media_assets_tests.defs_tests.conftest import Installation

REPO = Path(__file__).resolve().parents[2]
SERVER = os.environ.get("MEDIA_ASSETS_TEST_PG_URL")


@pytest.fixture
def postgres_url():
    if not SERVER:
        if os.environ.get("MEDIA_ASSETS_REQUIRE_PG") == "1":
            pytest.fail("MEDIA_ASSETS_TEST_PG_URL is not set but MEDIA_ASSETS_REQUIRE_PG=1")
        pytest.skip("no PostgreSQL: set MEDIA_ASSETS_TEST_PG_URL, e.g. "
                    "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    name = f"media_assets_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(SERVER.replace("+psycopg2", ""))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_batches_run_and_are_catalogued_on_postgres_storage(tmp_path, postgres_url,
                                                            monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("MEDIA_ASSETS_PG_URL", postgres_url)
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        install = Installation(root=tmp_path, instance=instance)
        install.set_policy()
        write_sample_images(install.inbox, size=(64, 48))
        install.age_inbox()
        [run] = install.ingest()
        assert run.success
        assert install.arrivals().height == 10
        [stored] = instance.get_runs()
        assert stored.run_id == run.run_id and stored.tags["dagster/partition"]
        assert instance.get_dynamic_partitions("batches") == [stored.tags["dagster/partition"]]
