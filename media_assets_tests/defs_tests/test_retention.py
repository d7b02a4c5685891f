"""Retention classes move originals to the cold tier or purge them (dry run first), purge
quarantined bytes, log every step in an append-only audit log, and later operations skip
purged originals with a reason instead of failing."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from media_assets.definitions import defs
from media_assets.records.audit import read_audit
from media_assets.records.catalog import read_catalog
from media_assets.records.reconcile import reconcile
from media_assets.samples import write_sample_images
from media_assets_tests.defs_tests.conftest import ON_BOTH_BACKENDS


@pytest.fixture
def two_folders(install):
    install.set_policy(retention={"folders": {"scratch": "ephemeral"}})
    install.drop_files(lambda inbox: (write_sample_images(inbox / "keep", size=(96, 72)),
                                      write_sample_images(inbox / "scratch", size=(96, 72),
                                                          seed=9)))
    install.age_inbox()
    [run] = install.ingest()
    assert run.success
    return install, run


def retention(install, days: float, dry_run: bool):
    as_of = (datetime.now(UTC) + timedelta(days=days)).isoformat()
    result = defs.resolve_job_def("apply_retention").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        run_config={"ops": {"retention_op": {"config": {"dry_run": dry_run, "as_of": as_of}}}})
    assert result.success
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return event.event_specific_data.metadata["due"].value


def rows(install, folder: str) -> pl.DataFrame:
    return read_catalog(install.store).filter(
        pl.col("source_name").str.starts_with(folder) & (pl.col("status") == "ok"))


# The two folders share one file (logo_alpha.png, same bytes): one original, kept by the
# more protective class. So 6 of scratch/'s 7 good files are purged.

def test_each_row_carries_the_class_of_its_folder(two_folders):
    install, _ = two_folders
    assert set(rows(install, "keep/")["retention"]) == {"standard"}
    assert set(rows(install, "scratch/")["retention"]) == {"ephemeral"}
    assert set(read_catalog(install.store).filter(pl.col("status") == "ok")["tier"]) == {"hot"}


def test_a_dry_run_shows_what_is_due_and_changes_nothing(two_folders):
    install, _ = two_folders
    before = sorted(install.store.list("originals/"))
    assert retention(install, days=10, dry_run=True) == {"purge": 6}
    assert sorted(install.store.list("originals/")) == before
    assert read_audit(install.store).filter(pl.col("action") == "purge").is_empty()


@ON_BOTH_BACKENDS  # on S3, cold is the GLACIER_IR storage class
def test_ephemeral_originals_are_purged_and_standard_ones_go_cold_later(two_folders):
    install, _ = two_folders
    assert retention(install, days=10, dry_run=False) == {"purge": 6}
    scratch = rows(install, "scratch/").filter(pl.col("source_name") != "scratch/logo_alpha.png")
    assert scratch["purged_at"].null_count() == 0 and scratch["tier"].null_count() == 6
    assert not any(install.store.exists(k) for k in scratch["original_key"])
    assert set(rows(install, "keep/")["tier"]) == {"hot"}
    assert install.store.exists(rows(install, "scratch/logo_alpha.png")["original_key"][0])

    assert retention(install, days=40, dry_run=False) == {"move": 7, "purge_quarantine": 4}
    keep = rows(install, "keep/")
    assert set(keep["tier"]) == {"cold"}
    for key in keep["original_key"]:
        assert install.store.tier(key) == "cold" and install.store.read_bytes(key)
    audit = read_audit(install.store)
    assert audit.group_by("action").len().sort("action").rows() == [
        ("move", 7), ("policy_change", 1),  # the policy file seeding its first version
        ("purge", 6), ("purge_quarantine", 4), ("quarantine", 6)]
    assert set(audit.filter(pl.col("action") == "move")["actor"]) == {"retention"}


def test_later_operations_skip_purged_originals_with_a_reason(two_folders):
    install, run = two_folders
    retention(install, days=10, dry_run=False)
    batch = run.dagster_run.tags["dagster/partition"]
    rerun = install.process(batch)
    assert rerun.success
    fixity = next(e for e in rerun.get_asset_check_evaluations()
                  if e.check_name == "originals_fixity")
    assert fixity.passed and len(fixity.metadata["skipped_purged"].value) == 6

    install.set_policy(retention={"folders": {"scratch": "ephemeral"}},
                       derivatives={"thumbnail": {"long_edge": 120, "format": "webp"}})
    rebuild = install.process(batch, selection=["thumbnails", "catalog"])
    assert rebuild.success
    logs = " ".join(entry.user_message for entry in install.instance.all_logs(rebuild.run_id))
    assert "6 originals were purged by retention and are skipped" in logs
    assert reconcile(install.store, read_catalog(install.store)).missing_originals == []


def test_the_audit_log_is_only_ever_appended_to(two_folders):
    install, _ = two_folders
    before = {k: install.store.read_bytes(k) for k in install.store.list("audit/")}
    retention(install, days=10, dry_run=False)
    after = {k: install.store.read_bytes(k) for k in install.store.list("audit/")}
    assert set(before) < set(after)
    assert all(after[k] == v for k, v in before.items())


def test_bytes_that_arrive_again_after_a_purge_are_processed_again(two_folders):
    install, _ = two_folders
    retention(install, days=10, dry_run=False)
    [gone] = rows(install, "scratch/web.webp").to_dicts()
    assert gone["purged_at"] is not None
    write_sample_images(install.inbox / "again", size=(96, 72), seed=9)
    install.age_inbox()
    [run] = install.ingest()
    assert run.success
    again = read_catalog(install.store).filter(pl.col("content_id") == gone["content_id"])
    assert set(again["tier"]) == {"hot"} and again["purged_at"].null_count() == again.height


def test_a_purged_batch_asks_for_no_rebuild_after_a_spec_change(two_folders):
    from dagster import build_sensor_context

    from media_assets.defs.maintenance import stale_derivatives_sensor

    install, _ = two_folders
    retention(install, days=10, dry_run=False)
    install.set_policy(retention={"folders": {"scratch": "ephemeral"}},
                       derivatives={"thumbnail": {"long_edge": 120, "format": "webp"}})
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    [request] = stale_derivatives_sensor(context).run_requests
    assert install.process(request.partition_key, ["thumbnails", "catalog"]).success
    after = stale_derivatives_sensor(context)  # purged files are not stale: nothing loops
    assert "every derivative matches" in after.skip_message


def test_a_rebuild_keeps_the_first_catalogued_time_that_retention_ages_from(two_folders):
    """Every rebuild, canary or rollback rewrites a batch's rows (cataloged_at = now); the
    age retention judges stays the first catalogued time, so nothing is postponed."""
    install, run = two_folders
    first = rows(install, "keep/").select(
        "content_id", "cataloged_at", "first_cataloged_at").unique("content_id")
    assert (first["first_cataloged_at"] <= first["cataloged_at"]).all()  # taken in, then
    batch = run.dagster_run.tags["dagster/partition"]
    assert install.process(batch, selection=["catalog"]).success  # the rows rewritten
    again = rows(install, "keep/").select("content_id", "cataloged_at", "first_cataloged_at")
    both = first.join(again, on="content_id", suffix="_again")
    assert both.height == first.height
    assert (both["cataloged_at_again"] > both["cataloged_at"]).all()
    assert (both["first_cataloged_at_again"] == both["first_cataloged_at"]).all()
    assert retention(install, days=31, dry_run=True).get("move", 0) > 0  # due as before


def test_a_folder_mapped_to_a_class_later_applies_to_the_files_it_already_brought(two_folders):
    install, _ = two_folders
    before = retention(install, days=8, dry_run=True).get("purge", 0)
    install.set_policy(retention={"folders": {"scratch": "ephemeral", "keep": "ephemeral"}})
    after = retention(install, days=8, dry_run=True).get("purge", 0)
    # keep/'s 7 good files are ephemeral now, the one it shares with scratch/ included
    assert (before, after) == (6, 13)


def test_a_purged_originals_lookup_says_so_instead_of_printing_a_dead_path(two_folders,
                                                                           capsys):
    import json

    from media_assets.cli import main as cli

    install, _ = two_folders
    retention(install, days=8, dry_run=False)  # scratch/ (ephemeral) is purged
    name = next(n for n in rows(install, "scratch/")["source_name"]
                if not n.endswith("logo_alpha.png"))  # the one keep/ shares stays
    assert cli(["--store", str(install.root / "store"), "lookup", name]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["provenance"]["tier"].startswith("purged")
    assert "original_path" not in row
