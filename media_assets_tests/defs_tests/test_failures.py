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
    import media_assets.defs.intake as intake

    install.drop("photo.jpg", jpeg_header)
    monkeypatch.setattr(intake, "hash_file", lambda path: "0" * 64)  # the store corrupted it
    [run] = install.ingest()
    assert run.success
    [row] = install.arrivals().iter_rows(named=True)
    assert (row["status"], row["reason"]) == ("quarantined", "fixity_mismatch")
    assert list(install.store.list("originals/")) == []
    assert install.store.exists(row["quarantine_key"])
