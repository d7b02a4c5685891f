"""Files that belong together are linked in the catalog even when they travel in different
lanes and batches: a live photo's still and movie, and XMP sidecars next to their images."""

import polars as pl
import pytest

from media_assets.records.catalog import content_view
from media_assets.samples import write_jpeg_with_orientation
from media_assets.samples.av import write_live_photo, write_xmp_sidecar

IDENTIFIER = "6A1B2C3D-0000-4000-8000-00000000CAFE"


@pytest.fixture
def linked(install):
    write_live_photo(install.inbox / "phone", "IMG_0001", IDENTIFIER)
    (install.inbox / "shoot").mkdir()
    write_jpeg_with_orientation(install.inbox / "shoot" / "DSC_0002.jpg", 1, size=(64, 48))
    write_xmp_sidecar(install.inbox / "shoot" / "DSC_0002.xmp", title="Harbour")
    write_jpeg_with_orientation(install.inbox / "shoot" / "DSC_0003.jpg", 1, size=(48, 64))
    write_xmp_sidecar(install.inbox / "shoot" / "DSC_0003.jpg.xmp", rating=5)  # darktable
    install.age_inbox()
    runs = install.ingest()
    assert all(run.success for run in runs)
    return install, runs


def links(install) -> dict[str, set[str]]:
    view = content_view(install.arrivals())
    names = dict(zip(view["content_id"], view["source_name"], strict=True))
    return {row["source_name"]: {names[c] for c in row["linked_content_ids"]}
            for row in view.iter_rows(named=True)}


def test_a_live_photo_still_and_movie_are_linked_across_lanes(linked):
    install, runs = linked
    assert {run.dagster_run.job_name for run in runs} == {"process_images", "process_av"}
    found = links(install)
    assert found["phone/IMG_0001.jpg"] == {"phone/IMG_0001.mov"}
    assert found["phone/IMG_0001.mov"] == {"phone/IMG_0001.jpg"}
    rows = install.arrivals().filter(pl.col("live_photo_id").is_not_null())
    assert set(rows["live_photo_id"]) == {IDENTIFIER} and rows.height == 2


def test_xmp_sidecars_are_kept_and_linked_to_their_images(linked):
    install, _ = linked
    found = links(install)
    assert found["shoot/DSC_0002.jpg"] == {"shoot/DSC_0002.xmp"}
    assert found["shoot/DSC_0003.jpg.xmp"] == {"shoot/DSC_0003.jpg"}
    sidecar = install.arrivals().filter(pl.col("source_name") == "shoot/DSC_0002.xmp").row(
        0, named=True)
    assert (sidecar["status"], sidecar["media_kind"], sidecar["media_type"]) == (
        "ok", "sidecar", "xmp")
    assert install.store.read_bytes(sidecar["original_key"]).startswith(b"<?xpacket")
    assert sidecar["derivatives"] == []


def test_files_that_only_share_a_stem_are_not_linked(linked):
    found = links(linked[0])
    assert found["shoot/DSC_0002.jpg"].isdisjoint({"shoot/DSC_0003.jpg", "phone/IMG_0001.jpg"})


def test_a_malformed_sidecar_is_quarantined(install):
    (install.inbox / "bad.xmp").write_bytes(b"<?xpacket begin='' ?><x:xmpmeta><unclosed>")
    install.age_inbox()
    [run] = install.ingest()
    assert run.success
    row = install.arrivals().row(0, named=True)
    # the document ends inside its elements: expat says so at the end of the input
    assert (row["status"], row["reason"]) == ("quarantined", "truncated")


def test_the_lookup_job_shows_the_linked_files(linked):
    from media_assets.definitions import defs

    install, _ = linked
    result = defs.resolve_job_def("lookup_file").execute_in_process(
        run_config={"ops": {"find_file": {"config": {"query": "IMG_0001.jpg"}}}},
        instance=install.instance, resources=install.sensor_resources())
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    linked_files = event.event_specific_data.metadata["linked_files"].value
    assert [f["source_name"] for f in linked_files] == ["phone/IMG_0001.mov"]
