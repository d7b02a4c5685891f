"""Checks fail when they should, and name the failing files."""

from dagster import AssetCheckKey, AssetKey

from media_assets.definitions import defs
from media_assets.samples import write_sample_images


def run_checks(install, key: str, *checks: tuple[str, str]):
    job = defs.resolve_job_def("process_batch").get_subset(
        asset_selection=set(),
        asset_check_selection={AssetCheckKey(AssetKey(a), name) for a, name in checks})
    result = job.execute_in_process(partition_key=key, instance=install.instance,
                                    resources=install.resources(), raise_on_error=False)
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def ingested(install) -> str:
    write_sample_images(install.inbox, size=(320, 240))
    install.age_inbox()
    [run] = install.ingest()
    return run.dagster_run.tags["dagster/partition"]


def test_a_missing_thumbnail_fails_its_check_naming_the_file(install):
    key = ingested(install)
    row = install.arrivals().filter(install.arrivals()["source_name"] == "web.webp").row(
        0, named=True)
    thumb = next(d for d in row["derivatives"] if d["name"] == "thumbnail")
    install.store.delete(thumb["key"])
    found = run_checks(install, key, ("thumbnails", "thumbnails_conform_to_spec"))
    check = found["thumbnails_conform_to_spec"]
    assert not check.passed
    assert check.metadata["failing_files"].value == {"web.webp": "missing"}


def test_a_damaged_original_fails_fixity_naming_the_file(install):
    key = ingested(install)
    row = install.arrivals().filter(
        install.arrivals()["source_name"] == "camera_rotated.jpg").row(0, named=True)
    with install.store.local_path(row["original_key"]) as path:
        path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    check = run_checks(install, key, ("originals", "originals_fixity"))["originals_fixity"]
    assert not check.passed
    assert check.metadata["failing_files"].value == {
        "camera_rotated.jpg": "bytes no longer match the content id"}


def test_a_catalog_missing_a_file_fails_the_batch_check(install):
    key = ingested(install)
    manifest_key = f"batches/{key}.json"
    import json

    manifest = json.loads(install.store.read_bytes(manifest_key))
    manifest["files"].append({**manifest["files"][0], "source_name": "ghost.jpg"})
    install.store.put_bytes(manifest_key, json.dumps(manifest).encode())
    check = run_checks(install, key, ("catalog", "catalog_matches_batch"))[
        "catalog_matches_batch"]
    assert not check.passed and check.metadata["failing_files"].value == {
        "ghost.jpg": "no catalog row"}


def test_each_check_result_names_its_batch_and_says_what_it_judged(install):
    """The check list shows a check failed while any batch's latest result failed, and the
    check's "latest execution" is the newest of any batch: each result says which batch and
    what it judged, so the two views never seem to disagree."""
    key = ingested(install)
    found = run_checks(install, key, ("thumbnails", "thumbnails_conform_to_spec"),
                       ("audio_preview", "audio_preview_conforms"))
    thumbs, audio = found["thumbnails_conform_to_spec"], found["audio_preview_conforms"]
    assert thumbs.passed and audio.passed
    assert thumbs.metadata["batch"].value == key == audio.metadata["batch"].value
    assert thumbs.description.startswith(f"batch {key}: all ") and "pass" in thumbs.description
    assert audio.description == f"batch {key}: nothing of this kind to check (0 files)"

    row = install.arrivals().filter(install.arrivals()["source_name"] == "web.webp").row(
        0, named=True)
    install.store.delete(next(d for d in row["derivatives"] if d["name"] == "thumbnail")["key"])
    failed = run_checks(install, key, ("thumbnails", "thumbnails_conform_to_spec"))
    assert failed["thumbnails_conform_to_spec"].description.startswith(
        f"batch {key}: 1 of ") and "web.webp: missing" in failed[
            "thumbnails_conform_to_spec"].description
