"""Erasure on request: one content id removed from the store, derivatives, quarantine,
catalog, index and archive (a new manifest version that verifies offline), and the audit
log says so by id and reason only."""

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from media_assets.archive import main as verify_cli
from media_assets.definitions import defs
from media_assets.records.archive import day_prefix, read_manifest
from media_assets.records.audit import read_audit
from media_assets.records.catalog import read_arrivals, read_catalog
from media_assets.records.reconcile import reconcile
from media_assets_tests.defs_tests.test_archive_assets import DAY, ingest_on, materialise


def run(install, job: str, config: dict, op: str):
    return defs.resolve_job_def(job).execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        run_config={"ops": {op: {"config": config}}}, raise_on_error=False)


@pytest.fixture
def erased(install, monkeypatch):
    ingest_on(install, monkeypatch, datetime(2026, 11, 20, 9, tzinfo=UTC), "shoot")
    assert materialise(install, "index_catalog").success
    assert materialise(install, "archive_catalog", DAY.isoformat()).success
    row = read_arrivals(install.store).filter(
        pl.col("source_name") == "shoot/web.webp").row(0, named=True)
    result = run(install, "erase_content", {"content_id": row["content_id"],
                                            "reason": "privacy request #42"}, "erase_op")
    assert result.success
    return install, row


def test_no_object_in_the_store_carries_the_content_any_more(erased):
    install, row = erased
    root = Path(install.store.root)
    leftovers = [p for p in root.rglob("*") if p.is_file() and (
        row["content_id"] in p.name or row["content_id"].encode() in p.read_bytes()
        and p.suffix in (".json", ".jsonl", ".parquet") and "history" not in p.parts
        and "audit" not in p.parts)]
    assert leftovers == []
    assert read_catalog(install.store).filter(
        pl.col("content_id") == row["content_id"]).is_empty()
    manifests = [json.loads(p.read_text()) for p in (root / "batches").glob("*.json")]
    assert all("shoot/web.webp" not in json.dumps(m) for m in manifests)


def test_the_archive_day_is_a_new_version_that_still_verifies(erased):
    install, row = erased
    manifest = read_manifest(install.store, DAY)
    assert row["content_id"] not in manifest["content_ids"] and manifest["rows"] == 9
    folder = Path(install.store.describe(day_prefix(DAY)))
    [history] = list((folder / "history").iterdir())
    assert json.loads(history.read_text())["erased_content_ids"] == [row["content_id"]]
    assert len(list(folder.glob("part-*.parquet"))) == 1  # the old data file is gone
    assert verify_cli(["verify", str(folder)]) == 0


def test_the_audit_log_records_the_erasure_without_the_metadata(erased):
    install, row = erased
    [record] = read_audit(install.store).filter(pl.col("action") == "erase").to_dicts()
    assert record["content_id"] == row["content_id"]
    assert record["reason"] == "privacy request #42" and record["from"] is None
    assert "web.webp" not in json.dumps(record)


def test_the_store_still_reconciles_and_checks_pass(erased):
    install, _ = erased
    assert reconcile(install.store, read_catalog(install.store)).clean
    again = materialise(install, "archive_catalog", DAY.isoformat())
    assert all(e.passed for e in again.get_asset_check_evaluations())


def test_an_erasure_needs_a_full_content_id_and_a_reason(install):
    bad = run(install, "erase_content", {"content_id": "abc", "reason": "x"}, "erase_op")
    assert not bad.success
    empty_reason = run(install, "erase_content", {"content_id": "a" * 64, "reason": " "},
                       "erase_op")
    assert not empty_reason.success



def test_derivatives_of_older_specs_are_erased_too(install, monkeypatch):
    ingest_on(install, monkeypatch, datetime(2026, 11, 20, 9, tzinfo=UTC), "shoot")
    batch = read_arrivals(install.store)["batch_key"][0]
    install.set_policy(derivatives={"thumbnail": {"long_edge": 120, "format": "webp"}})
    assert install.process(batch, ["thumbnails", "catalog"]).success  # a second thumbnail
    row = read_arrivals(install.store).filter(
        pl.col("source_name") == "shoot/web.webp").row(0, named=True)
    before = [k for k in install.store.list("derived/") if row["content_id"] in k]
    assert len([k for k in before if k.startswith("derived/thumbnail/")]) == 2
    assert run(install, "erase_content", {"content_id": row["content_id"], "reason": "takedown"},
               "erase_op").success
    assert [k for k in install.store.list("") if row["content_id"] in k.rsplit("/", 1)[-1]
            and not k.startswith(("audit/", "archive/"))] == []


def test_an_erasure_that_failed_half_way_finishes_when_run_again(install, monkeypatch):
    from media_assets.records import erasure

    ingest_on(install, monkeypatch, datetime(2026, 11, 20, 9, tzinfo=UTC), "shoot")
    assert materialise(install, "archive_catalog", DAY.isoformat()).success
    cid = read_arrivals(install.store).filter(
        pl.col("source_name") == "shoot/web.webp")["content_id"][0]

    def broken(*args, **kwargs):
        raise RuntimeError("the disk went away")

    with monkeypatch.context() as patch:
        patch.setattr(erasure, "_rewrite_archive_days", broken)
        first = run(install, "erase_content", {"content_id": cid, "reason": "privacy"},
                    "erase_op")
        assert not first.success
    assert cid in read_manifest(install.store, DAY)["content_ids"]  # catalog done, archive not
    assert run(install, "erase_content", {"content_id": cid, "reason": "privacy"},
               "erase_op").success
    assert cid not in read_manifest(install.store, DAY)["content_ids"]
