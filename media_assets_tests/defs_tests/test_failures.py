"""Storage failing mid-batch: nothing leaves the inbox unstored, the step is retried with
backoff, and the retried run ends exactly as an uninterrupted one."""

import errno

import polars as pl

from media_assets.samples import write_sample_images
from media_assets.storage.local import LocalObjectStore


def test_a_full_disk_mid_intake_loses_nothing_and_the_retry_completes(install, monkeypatch):
    write_sample_images(install.inbox, size=(320, 240))
    install.age_inbox()
    real_put = LocalObjectStore.put_file_if_absent
    calls = {"n": 0}

    def put_failing_once(self, key, source):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_put(self, key, source)

    monkeypatch.setattr(LocalObjectStore, "put_file_if_absent", put_failing_once)
    [run] = install.ingest()

    assert run.success  # the step failed once, then Dagster's RetryPolicy re-ran it
    failures = [e for e in run.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(failures) == 1
    rows = install.arrivals()
    assert rows.height == 10 and rows["source_name"].n_unique() == 10
    assert rows.filter(pl.col("status") == "ok").height == 7
    assert rows["duplicate"].sum() == 0  # stored by the failed attempt, still this batch's
    assert list(install.inbox.rglob("*.*")) == []
    assert not any(".tmp-" in key for key in install.store.list(""))


def test_bytes_that_do_not_verify_after_storing_are_quarantined_not_kept(install, monkeypatch,
                                                                         jpeg_header):
    import media_assets.operations.batch_pass as intake
    from media_assets.storage.local import LocalObjectStore

    install.drop("photo.jpg", jpeg_header)
    # a store the bytes travel to (as an upload does), which corrupted them on the way
    monkeypatch.setattr(LocalObjectStore, "links_staged_files", False)
    monkeypatch.setattr(intake, "hash_file", lambda path: "0" * 64)
    [run] = install.ingest()
    assert run.success
    [row] = install.arrivals().iter_rows(named=True)
    assert (row["status"], row["reason"]) == ("quarantined", "fixity_mismatch")
    assert list(install.store.list("originals/")) == []
    assert install.store.exists(row["quarantine_key"])


def test_a_linked_original_verifies_by_construction_an_existing_one_is_read_back(
        install, monkeypatch, jpeg_header):
    import media_assets.operations.batch_pass as intake

    read_back: list[str] = []
    real_hash = intake.hash_file
    monkeypatch.setattr(intake, "hash_file",
                        lambda path: read_back.append(path.name) or real_hash(path))
    install.drop("photo.jpg", jpeg_header)
    [first] = install.ingest()
    assert first.success and read_back == []  # the staged file the worker hashed, linked in
    install.drop("again.jpg", jpeg_header)  # the same bytes: the stored object is checked
    [second] = install.ingest()
    assert second.success and len(read_back) == 1
    [row] = install.arrivals().filter(pl.col("source_name") == "again.jpg").iter_rows(
        named=True)
    assert (row["status"], row["duplicate"]) == ("ok", True)


def test_a_new_file_under_an_ingested_name_is_not_deleted_by_a_rerun(install, jpeg_header):
    """Cameras reuse names (IMG_0001.JPG): re-running an old batch must not touch the new one."""
    install.drop("IMG_0001.JPG", jpeg_header)
    [first] = install.ingest()
    key = first.dagster_run.tags["dagster/partition"]
    newer = install.drop("IMG_0001.JPG", jpeg_header + b"other bytes", age=10)
    assert install.process(key).success
    assert newer.exists()
    [second] = install.ingest()  # the sensor then ingests it as an arrival of its own
    assert second.success and not newer.exists()
    assert install.arrivals()["content_id"].n_unique() == 2


def test_a_file_rewritten_during_intake_stays_in_the_inbox(install, jpeg_header, monkeypatch):
    import os
    import time

    from media_assets.records import manifest as manifests

    path = install.drop("growing.jpg", jpeg_header)
    real_save = manifests.save_manifest

    def save_then_rewrite(store, manifest):
        real_save(store, manifest)
        path.write_bytes(jpeg_header + b"appended later")  # the writer was not done
        os.utime(path, (time.time(), time.time()))

    monkeypatch.setattr("media_assets.operations.batch_pass.save_manifest", save_then_rewrite)
    [run] = install.ingest()
    assert run.success and path.exists()
    changed = [e.materialization.metadata for e in run.get_asset_materialization_events()
               if e.materialization.asset_key.to_user_string() == "originals"][0]
    assert changed["left_in_inbox"].value == ["growing.jpg"]


def test_a_file_still_being_written_when_read_is_left_for_the_next_batch_unjudged(
        install, jpeg_header, monkeypatch):
    """A writer that paused past the settle time and went on: what the batch read may be
    partial, so it is neither stored nor quarantined; the next batch takes the whole file."""
    import os
    import time

    from media_assets.operations.batch_pass import _BatchPass
    from media_assets.records.manifest import all_quarantine_records

    path = install.drop("slow-upload.jpg", jpeg_header[:200])  # the first part, then a pause
    real_settle = _BatchPass.settle

    def writer_resumes_while_the_worker_reads(batch, job, outcome):
        with open(path, "ab") as resumed:
            resumed.write(jpeg_header[200:])
        stamp = time.time() - 30
        os.utime(path, (stamp, stamp))
        return real_settle(batch, job, outcome)

    monkeypatch.setattr(_BatchPass, "settle", writer_resumes_while_the_worker_reads)
    [first] = install.ingest()
    assert first.success and path.exists()
    [row] = install.arrivals().iter_rows(named=True)
    assert (row["status"], row["reason"]) == ("unreadable", "still_being_written")
    assert list(all_quarantine_records(install.store)) == []
    monkeypatch.undo()
    [second] = install.ingest()  # the whole file now
    assert second.success and not path.exists()
    rows = install.arrivals().filter(pl.col("status") == "ok")
    assert rows["source_name"].to_list() == ["slow-upload.jpg"]


def test_the_same_bad_bytes_under_two_names_keep_two_quarantine_records(install):
    from media_assets.records.manifest import all_quarantine_records

    install.drop("x.txt", b"hello")
    install.drop("notes/y.txt", b"hello")
    install.drop("a.jpg", b"\xff\xd8\xff" + b"\x00" * 10)  # JPEG magic, broken header
    install.drop("copy/a.jpg", b"\xff\xd8\xff" + b"\x00" * 10)
    [run] = install.ingest()
    assert run.success
    names = sorted(r["source_name"] for r in all_quarantine_records(install.store))
    assert names == ["a.jpg", "copy/a.jpg", "notes/y.txt", "x.txt"]


def test_the_same_good_bytes_twice_in_one_batch_count_once(install, jpeg_header):
    install.drop("a.jpg", jpeg_header)
    install.drop("copy/a.jpg", jpeg_header)
    [run] = install.ingest()
    assert run.success
    flags = dict(install.arrivals().select("source_name", "duplicate").iter_rows())
    assert flags == {"a.jpg": False, "copy/a.jpg": True}  # by name, not by finishing order
    assert len(list(install.store.list("originals/"))) == 1


def test_a_file_that_becomes_unreadable_stays_in_the_inbox_and_the_batch_completes(
    install, jpeg_header
):
    install.drop("good.jpg", jpeg_header)
    bad = install.drop("bad.jpg", jpeg_header + b"bad")
    result = install.tick()
    bad.unlink()
    bad.symlink_to(bad)  # a link loop: opening it fails in the worker and in the step
    run = install.process(result.run_requests[0].partition_key)
    assert run.success
    rows = {r["source_name"]: r["status"] for r in install.arrivals().iter_rows(named=True)}
    assert rows == {"good.jpg": "ok", "bad.jpg": "unreadable"}
    assert bad.is_symlink()  # left where it was: nothing is lost, nothing half-stored
