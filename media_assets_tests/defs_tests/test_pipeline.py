"""One run per batch does the whole chain in-process on a temporary instance: originals in
the content store, metadata, thumbnails and previews, the catalog, checks and quarantine."""

import json
import multiprocessing
from datetime import UTC, datetime

import polars as pl
import pytest
from dagster import AssetKey, AssetRecordsFilter
from PIL import Image

from media_assets.core.policy import load_policy
from media_assets.records.catalog import content_view, stale_derivatives
from media_assets.records.layout import original_key
from media_assets.records.manifest import all_quarantine_records, load_manifest
from media_assets.samples import write_sample_images
from media_assets_tests.defs_tests.conftest import ON_BOTH_BACKENDS


@pytest.fixture
def mixed_batch(install):
    """The sample set (incl. corrupt, empty, lying-extension and text files), processed."""
    install.drop_files(write_sample_images, size=(640, 480))
    install.age_inbox()
    [run] = install.ingest()
    assert run.success
    return install, run


def statuses(install) -> dict[str, tuple[str, str | None]]:
    return {r["source_name"]: (r["status"], r["reason"])
            for r in install.arrivals().iter_rows(named=True)}


@ON_BOTH_BACKENDS
def test_good_files_are_catalogued_and_bad_ones_quarantined_without_failing_the_batch(
    mixed_batch,
):
    install, _ = mixed_batch
    found = statuses(install)
    ok = {n for n, (status, _) in found.items() if status == "ok"}
    assert ok == {"camera_rotated.jpg", "logo_alpha.png", "print_cmyk.jpg", "animation.gif",
                  "scan_16bit.tif", "web.webp", "wrong_extension.png"}
    assert found["broken.jpg"][0] == "quarantined"
    assert found["broken.jpg"][1] in {"truncated", "corrupt"}
    assert found["empty.jpg"] == ("quarantined", "empty")
    assert found["notes.txt"] == ("quarantined", "unsupported_type")


@ON_BOTH_BACKENDS
def test_every_file_left_the_inbox_and_no_original_was_lost(mixed_batch):
    install, _ = mixed_batch
    assert install.inbox_names() == []
    for row in install.arrivals().iter_rows(named=True):
        kept = row["original_key"] if row["status"] == "ok" else row["quarantine_key"]
        if row["reason"] != "empty":
            assert install.store.exists(kept), row["source_name"]


@ON_BOTH_BACKENDS
def test_quarantine_records_say_why_and_where(mixed_batch):
    install, run = mixed_batch
    records = {r["source_name"]: r for r in all_quarantine_records(install.store)}
    assert set(records) == {"broken.jpg", "empty.jpg", "notes.txt"}
    broken = records["broken.jpg"]
    # cut short: intake sees it from the JPEG's structure, before any decode
    assert broken["run_id"] == run.run_id and broken["stage"] == "originals"
    assert broken["reason"] == "truncated"
    assert {"content_id", "reason", "error_class", "quarantined_at", "batch_key"} <= set(broken)
    assert install.store.exists(broken["bytes_key"])


def test_a_lying_extension_is_processed_as_its_real_type(mixed_batch):
    install, _ = mixed_batch
    row = install.arrivals().filter(pl.col("source_name") == "wrong_extension.png").row(
        0, named=True)
    assert row["media_type"] == "jpeg" and row["original_key"].endswith(".jpg")


def test_originals_are_addressed_by_content(mixed_batch):
    install, _ = mixed_batch
    row = install.arrivals().filter(pl.col("source_name") == "camera_rotated.jpg").row(
        0, named=True)
    assert row["original_key"] == original_key(row["content_id"], "jpg")
    assert len(row["content_id"]) == 64


@ON_BOTH_BACKENDS
def test_derivatives_follow_the_policy_and_are_upright(mixed_batch):
    install, _ = mixed_batch
    row = install.arrivals().filter(pl.col("source_name") == "camera_rotated.jpg").row(
        0, named=True)
    derivatives = {d["name"]: d for d in row["derivatives"]}
    assert set(derivatives) == {"thumbnail", "preview"}
    with install.store.local_path(derivatives["thumbnail"]["key"]) as path, Image.open(path) as im:
        assert im.format == "WEBP" and max(im.size) == 250
        assert im.height > im.width  # orientation 6: stored landscape, shown portrait
    assert row["width"] < row["height"]
    assert row["camera"] and row["gps_present"] is True


@ON_BOTH_BACKENDS
def test_a_large_file_goes_through_in_parts_and_is_catalogued(install, backend):
    """20 MB of incompressible pixels: a multipart upload on S3, streamed downloads."""
    import io

    import numpy as np

    noise = np.random.default_rng(7).integers(0, 256, (2600, 2600, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG", compress_level=0)
    assert buffer.tell() > 20_000_000
    install.drop("scans/noise.png", buffer.getvalue())
    [run] = install.ingest()
    assert run.success
    row = install.arrivals().row(0, named=True)
    assert (row["status"], row["bytes"]) == ("ok", buffer.tell())
    assert {d["name"] for d in row["derivatives"]} == {"thumbnail", "preview"}
    with install.store.local_path(row["original_key"]) as path:
        assert path.stat().st_size == buffer.tell()
    if backend == "s3":
        store = install.store
        head = store.client.head_object(Bucket=store.bucket, Key=store.prefix + row["original_key"])
        assert head["ETag"].endswith('-4"')  # stored in four 5 MiB parts
    assert install.inbox_names() == []


def test_checks_pass_and_the_run_reports_tables_and_a_contact_sheet(mixed_batch):
    _, run = mixed_batch
    evaluations = run.get_asset_check_evaluations()
    assert all(e.passed for e in evaluations)
    assert {e.check_name for e in evaluations} == {  # never the nightly whole-store check
        "store_is_usable", "originals_fixity", "thumbnails_conform_to_spec",
        "previews_conform_to_spec", "catalog_matches_batch"}
    materialized = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
                    for e in run.get_asset_materialization_events()}
    assert set(materialized) == {"originals", "image_metadata", "thumbnails", "previews",
                                 "catalog",  # and, empty, the assets of other kinds:
                                 "video_metadata", "audio_metadata", "poster",
                                 "web_rendition", "audio_preview", "waveform"}
    assert materialized["originals"]["quarantined"].value == 3  # broken.jpg at intake too
    # every file of the batch is on the sheet, the quarantined ones as tiles with a reason
    sheet = materialized["thumbnails"]["contact_sheet"].value
    assert sheet.startswith("10 files on 1 pages") and "data:image/webp;base64," in sheet
    # the quarantined files also have a table of their own, reason first
    quarantined = materialized["originals"]["quarantined_files"]
    assert len(quarantined.records) == 3
    assert [c.name for c in quarantined.schema.columns][:2] == ["source_name", "reason"]
    assert len(materialized["catalog"]["rows"].records) == 10


@ON_BOTH_BACKENDS
def test_the_same_bytes_under_another_name_cause_no_new_work(mixed_batch):
    install, _ = mixed_batch
    again = install.store.read_bytes(
        install.arrivals().filter(pl.col("source_name") == "web.webp")["original_key"][0])
    install.drop("renamed/copy.webp", again)
    [run] = install.ingest()
    metadata = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
                for e in run.get_asset_materialization_events()}
    assert metadata["originals"]["duplicates"].value == 1
    assert metadata["thumbnails"]["rendered"].value == 0
    view = content_view(install.arrivals())
    names = view.filter(pl.col("source_names").list.contains("web.webp"))["source_names"][0]
    assert names.to_list() == ["renamed/copy.webp", "web.webp"]


@ON_BOTH_BACKENDS
def test_rematerialising_a_batch_after_its_inbox_files_are_gone_is_idempotent(mixed_batch):
    install, run = mixed_batch
    key = run.dagster_run.tags["dagster/partition"]
    before = install.arrivals().drop("cataloged_at", "run_id").sort("source_name")
    rerun = install.process(key)
    assert rerun.success
    after = install.arrivals().drop("cataloged_at", "run_id").sort("source_name")
    changed = [c for c in before.columns if not after[c].equals(before[c])]
    assert changed == []
    rendered = [e.materialization.metadata["rendered"].value
                for e in rerun.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == "thumbnails"]
    assert rendered == [0]
    assert load_manifest(install.store, key)["files"] is not None


def test_changing_the_thumbnail_spec_makes_only_thumbnails_stale(mixed_batch):
    install, run = mixed_batch
    key = run.dagster_run.tags["dagster/partition"]
    previews_before = sorted(install.store.list("derived/preview/"))
    install.set_policy(derivatives={"thumbnail": {"long_edge": 200, "format": "webp",
                                                  "quality": 75}})
    policy = load_policy(install.policy_path)
    stale = stale_derivatives(install.arrivals(), policy)
    assert set(stale["derivative"]) == {"thumbnail"} and set(stale["batch_key"]) == {key}

    rebuild = install.process(key, selection=["thumbnails", "catalog"])
    assert rebuild.success
    assert stale_derivatives(install.arrivals(), policy).is_empty()
    assert sorted(install.store.list("derived/preview/")) == previews_before
    row = install.arrivals().filter(pl.col("source_name") == "web.webp").row(0, named=True)
    thumb = next(d for d in row["derivatives"] if d["name"] == "thumbnail")
    assert thumb["spec_hash"] == policy.derivative("thumbnail").spec_hash
    assert max(thumb["width"], thumb["height"]) == 200


def test_catalog_rows_record_provenance(mixed_batch):
    install, run = mixed_batch
    row = install.arrivals().row(0, named=True)
    assert row["run_id"] == run.run_id
    assert json.loads(row["code_versions"])["originals"] == "originals-1"
    assert row["policy_version"].startswith("1@")


def test_no_worker_process_outlives_its_run(mixed_batch):
    """A run process that keeps its decode workers never exits (seen under `dagster dev`)."""
    assert multiprocessing.active_children() == []


def test_a_batch_of_content_ids_reprocesses_files_already_in_the_store(mixed_batch):
    """Replay and rebuild jobs form batches of content ids, with no inbox file at all."""
    from media_assets.records.manifest import new_manifest, open_batch

    install, _ = mixed_batch
    row = install.arrivals().filter(pl.col("source_name") == "web.webp").row(0, named=True)
    manifest = new_manifest("20991231T000000Z-0001", "image",
                            [{"content_id": row["content_id"], "source_name": "web.webp"}],
                            datetime.now(UTC), "replay")
    open_batch(install.store, manifest)
    install.instance.add_dynamic_partitions("batches", [manifest["batch_key"]])
    assert install.process(manifest["batch_key"]).success
    replayed = install.arrivals().filter(pl.col("batch_key") == manifest["batch_key"])
    assert replayed.select("status", "media_type", "duplicate").row(0) == ("ok", "webp", True)


def test_a_batch_shows_complete_for_the_assets_of_kinds_it_does_not_hold(mixed_batch):
    """Partition health tells the truth: an image batch has nothing for the video and audio
    assets to make, and says so as an empty materialisation of its partition instead of
    leaving them grey ("missing") in the lineage view."""
    install, run = mixed_batch
    batch = run.dagster_run.tags["dagster/partition"]
    for asset_name in ("video_metadata", "audio_metadata", "poster", "web_rendition",
                       "audio_preview", "waveform"):
        assert batch in install.instance.get_materialized_partitions(AssetKey(asset_name))
        [record] = install.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset_name), asset_partitions=[batch]),
            limit=1).records
        event = record.event_log_entry.asset_materialization
        assert event.description.startswith("nothing to make: the batch holds no")
        assert event.metadata["files"].value == 0
