"""The disk guard: below the policy's free-space minimum the sensor holds new batches, says
why in its tick, alerts once; and a write that fails for lack of space leaves nothing behind."""

import errno
import os

import polars as pl
import pytest

from media_assets.records.audit import read_audit
from media_assets.samples import write_sample_images
from media_assets.storage import LocalObjectStore


def test_the_sensor_holds_batches_while_the_store_is_short_of_space(install, monkeypatch):
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    monkeypatch.setattr(LocalObjectStore, "free_bytes", lambda self: 200 * 1024**2)
    first, second = install.tick(), install.tick()
    assert "disk guard" in first.skip_message and "files wait in the inbox" in first.skip_message
    assert not hasattr(second, "run_requests")
    assert len(list(install.inbox.iterdir())) == 10
    alerts = read_audit(install.store).filter(pl.col("action") == "alert")
    assert alerts.height == 1  # once, not every tick

    monkeypatch.setattr(LocalObjectStore, "free_bytes", lambda self: 50 * 1024**3)
    assert len(install.tick().run_requests) == 1
    assert "alert_cleared" in set(read_audit(install.store)["action"])


def test_a_write_that_runs_out_of_space_leaves_no_partial_file(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path / "store")
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 100_000)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        store.put_file("derived/a/b.bin", source)
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert leftovers == [] and not store.exists("derived/a/b.bin")
    assert source.read_bytes() == b"x" * 100_000  # the original is untouched
