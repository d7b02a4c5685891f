"""The disk guard: below the policy's free-space minimum the sensor holds new batches, says
why in its tick, alerts once; and a write that fails for lack of space leaves nothing behind."""

import errno
import os

import polars as pl
import pytest

from media_assets.core.errors import MachineFault
from media_assets.core.policy import load_policy
from media_assets.records.audit import read_audit
from media_assets.records.manifest import load_manifest
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
    with pytest.raises(MachineFault, match="ENOSPC"):  # the machine's fault: never a file's
        store.put_file("derived/a/b.bin", source)
    leftovers = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert leftovers == [] and not store.exists("derived/a/b.bin")
    assert source.read_bytes() == b"x" * 100_000  # the original is untouched


def test_with_room_for_some_files_the_sensor_launches_those_and_says_what_the_rest_need(
        install, monkeypatch):
    write_sample_images(install.inbox, size=(64, 48))
    install.age_inbox()
    sizes = sorted(p.stat().st_size for p in install.inbox.iterdir())
    limits = load_policy(install.policy_path).limits
    room = limits.min_free_bytes + int(sum(sizes[:3]) * limits.output_factor)
    monkeypatch.setattr(LocalObjectStore, "free_bytes", lambda self: room)

    [run] = install.tick().run_requests

    manifest = load_manifest(install.store, run.partition_key)
    assert 1 <= len(manifest["sources"]) < 10
    assert manifest["closed_because"] == "disk_space"
    alerts = read_audit(install.store).filter(pl.col("action") == "alert")
    assert "files wait in the inbox and need" in alerts["reason"][0]
    assert install.process(run.partition_key).success
    assert len(list(install.inbox.iterdir())) == 10 - len(manifest["sources"])  # they wait
