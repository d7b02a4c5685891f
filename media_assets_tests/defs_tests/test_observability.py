"""What the operator can see: per-batch throughput and errors by reason on the catalog's
materialisation (plotted over time), the backlog on the freshness check, and one logfmt line
per file event that carries its content id, source name, batch and run id."""

import re

import polars as pl

from media_assets.definitions import defs
from media_assets.samples import synth_photo, write_sample_images


def test_the_catalog_records_throughput_and_quarantines_by_reason(install):
    write_sample_images(install.inbox, size=(160, 120))
    install.age_inbox()
    [result] = install.ingest()
    metadata = result.asset_materializations_for_node("catalog")[0].metadata
    assert metadata["files_per_second"].value > 0 and metadata["batch_seconds"].value > 0
    rows = install.arrivals().filter(pl.col("status") == "quarantined")
    for reason, count in rows.group_by("reason").len().iter_rows():
        assert metadata[f"quarantined_{reason}"].value == count


def test_every_file_event_is_logged_with_its_content_id_batch_and_run(install):
    write_sample_images(install.inbox, size=(160, 120))
    install.age_inbox()
    [result] = install.ingest()
    lines = [entry.user_message for entry in install.instance.all_logs(result.run_id)
             if "event=" in (entry.user_message or "")]
    quarantined = [line for line in lines if "event=quarantined" in line]
    assert len(quarantined) == install.arrivals().filter(
        pl.col("status") == "quarantined").height
    for line in lines:
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
        assert fields["run_id"] == result.run_id
        assert fields["batch"] == result.dagster_run.tags["dagster/partition"]
        assert re.fullmatch(r"[0-9a-f]{64}|-", fields["content_id"])
        assert fields["source_name"]


def test_the_freshness_check_shows_the_backlog(install):
    for index in range(3):
        synth_photo((64, 48), seed=index).save(install.inbox / f"waiting_{index}.jpg")
    result = defs.resolve_job_def("check_freshness").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(), raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert metadata["inbox_depth"] == 3 and metadata["open_batches"] == 0
    assert metadata["queued_runs_image"] == 0 and "queued_runs_heavy" in metadata
