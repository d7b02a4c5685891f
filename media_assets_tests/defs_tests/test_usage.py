"""Each materialisation records what it consumed; the daily `usage` asset prices it by
asset, media kind and source folder, and a folder over its budget is alerted and held."""

from datetime import UTC, datetime

import polars as pl

from media_assets.definitions import defs
from media_assets.operations.usage import read_usage
from media_assets.samples import synth_photo, write_sample_images
from media_assets_tests.webhook import webhook_receiver


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def price_today(install):
    return defs.resolve_job_def("price_usage").execute_in_process(
        partition_key=today(), instance=install.instance, resources=install.sensor_resources())


def ingest_two_folders(install):
    write_sample_images(install.inbox / "agency", size=(320, 240))
    for index in range(3):
        synth_photo((320, 240), seed=index).save(install.inbox / f"root_{index}.jpg")
    install.age_inbox()
    return install.ingest()


def test_every_step_records_cpu_wall_and_bytes_per_file(install):
    [result] = ingest_two_folders(install)
    records = read_usage(install.store, today())
    # One pass per file makes the originals, their metadata and derivatives: one cost.
    one_pass = "image_metadata+originals+previews+thumbnails"
    assert set(records["asset"]) == {one_pass, "catalog"}
    ok = set(install.arrivals().filter(pl.col("status") == "ok")["content_id"])
    derivatives = records.filter(pl.col("asset") == one_pass)
    assert ok <= set(derivatives["content_id"])  # a record per file tried (failures cost too)
    assert derivatives["content_id"].is_unique().all()
    rendered = derivatives.filter(pl.col("content_id").is_in(ok))
    assert (rendered["cpu_seconds"] > 0).all() and (rendered["wall_seconds"] > 0).all()
    assert (rendered["bytes_written_hot"] > 0).all() and (rendered["bytes_read"] > 0).all()
    assert set(records["folder"]) == {"agency", ""}

    thumbnails = result.asset_materializations_for_node("batch_pass")[0].metadata
    assert thumbnails["usage/cpu_seconds"].value > 0
    assert thumbnails["usage/bytes_written_hot"].value == derivatives["bytes_written_hot"].sum()


def test_the_daily_usage_is_priced_by_asset_kind_and_folder(install):
    ingest_two_folders(install)
    result = price_today(install)
    metadata = result.asset_materializations_for_node("usage")[0].metadata
    assert metadata["cost_usd"].value > 0 and metadata["cpu_hours"].value > 0
    # every file that cost something, quarantined ones included
    assert metadata["files_processed"].value == install.arrivals()["content_id"].n_unique()
    folders = {r.data["folder"] for r in metadata["by_folder"].value.records}
    assert {"agency", "(root)"} <= folders
    priced = pl.read_parquet(install.root / "store" / f"usage/daily/date={today()}/usage.parquet")
    assert "storage" in set(priced["asset"])  # the bytes held today are priced too
    assert priced.filter(pl.col("asset") == "storage")["stored_bytes"].sum() > 0


def test_a_folder_over_budget_is_alerted_and_held_until_tomorrow(install):
    install.set_policy(costs={"folder_budgets": {"agency": 1e-9, "": 1000.0},
                              "pause_over_budget": True})
    with webhook_receiver() as receiver:
        install.webhook_url = receiver.url
        ingest_two_folders(install)
        metadata = price_today(install).asset_materializations_for_node("usage")[0].metadata
    assert receiver.sources() == ["budget:agency"]
    assert receiver.bodies[0]["media_assets"]["severity"] == "error"
    levels = {r.data["scope"]: r.data["level"] for r in metadata["budgets"].value.records}
    assert levels == {"agency": "over", "": "ok"}

    synth_photo((64, 48), seed=7).save(install.inbox / "agency" / "late.jpg")
    synth_photo((64, 48), seed=8).save(install.inbox / "fresh.jpg")
    install.age_inbox()
    result = install.tick()
    [request] = result.run_requests  # the root folder flows
    install.process(request.partition_key, job_name=request.job_name)
    assert "fresh.jpg" in set(install.arrivals()["source_name"])
    held = install.tick()
    assert "folder agency held until tomorrow (UTC)" in held.skip_message
    assert "1 files wait" in held.skip_message
    assert (install.inbox / "agency" / "late.jpg").exists()
