"""S3 is chosen by configuration alone: environment variables, read through EnvVars."""

import importlib

import pytest
from dagster import EnvVar, build_resources

import media_assets.definitions as definitions
from media_assets.storage import LocalInbox, LocalObjectStore
from media_assets.storage.s3 import S3ObjectStore
from media_assets.storage.s3_inbox import S3Inbox
from media_assets_tests.s3_server import BUCKET


@pytest.fixture
def reload_definitions(monkeypatch):
    """The code location as loaded under the environment the test sets."""
    yield lambda: importlib.reload(definitions).defs
    monkeypatch.undo()
    importlib.reload(definitions)


def test_by_default_the_store_and_the_inbox_are_local_folders():
    resources = definitions.defs.resources
    with build_resources({"storage": resources["storage"], "inbox": resources["inbox"]}) as r:
        assert isinstance(r.storage.store().inner, LocalObjectStore)
        assert isinstance(r.inbox.inbox(), LocalInbox)


@pytest.mark.s3
def test_s3_urls_in_the_environment_put_the_store_and_the_inbox_on_s3(
        s3_server, monkeypatch, reload_definitions):
    prefix = s3_server.new_prefix()
    for name, value in {**s3_server.env(),
                        "MEDIA_ASSETS_STORE": f"s3://{BUCKET}/{prefix}/store",
                        "MEDIA_ASSETS_INBOX": f"s3://{BUCKET}/{prefix}/inbox",
                        "MEDIA_ASSETS_S3_SSE": "AES256",
                        "MEDIA_ASSETS_S3_COLD_STORAGE_CLASS": "STANDARD_IA"}.items():
        monkeypatch.setenv(name, value)
    resources = reload_definitions().resources
    assert resources["storage"].aws_secret_access_key == EnvVar("AWS_SECRET_ACCESS_KEY")
    with build_resources({"storage": resources["storage"], "inbox": resources["inbox"]}) as r:
        store, inbox = r.storage.store().inner, r.inbox.inbox()
    assert isinstance(store, S3ObjectStore) and isinstance(inbox, S3Inbox)
    assert store.describe("k") == f"s3://{BUCKET}/{prefix}/store/k"
    assert store.sse == "AES256" and store.cold_storage_class == "STANDARD_IA"
    store.put_bytes("k", b"v")
    client = s3_server.client()
    assert client.head_object(Bucket=BUCKET, Key=f"{prefix}/store/k")[
        "ServerSideEncryption"] == "AES256"
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/inbox/a.jpg", Body=b"x")
    assert [e.name for e in inbox.list_entries()] == ["a.jpg"]


@pytest.mark.s3
def test_the_cli_reads_an_s3_store_with_the_same_variables(s3_server, monkeypatch, capsys):
    from media_assets.cli import main

    prefix = s3_server.new_prefix()
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    assert main(["--store", f"s3://{BUCKET}/{prefix}", "reconcile"]) == 0
    assert "orphan" in capsys.readouterr().out


def test_the_s3_connection_fields_are_dagster_aws_s_own():
    """Declared here so local installs never import dagster-aws; kept in step with it."""
    from dagster_aws.s3.resources import ResourceWithS3Configuration

    from media_assets.defs.resources import S3_CONNECTION_FIELDS, S3Settings

    theirs = ResourceWithS3Configuration.model_fields
    assert set(S3_CONNECTION_FIELDS) == set(theirs)
    for name in S3_CONNECTION_FIELDS:
        assert S3Settings.model_fields[name].default == theirs[name].default, name
