"""A real full disk under the real daemon: the store's filesystem (a small tmpfs) fills up
while a batch run works. No good file may be quarantined for it, no original lost; the run
fails, sensor ticks say the disk is full, and once space comes back the batch runs again by
itself and every file ends `ok`."""

import contextlib
import errno
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
import yaml

from media_assets.records.catalog import read_arrivals
from media_assets.storage import LocalObjectStore
from media_assets_tests.chaos_tools import busy, decode_workers, drop, photo_bytes
from media_assets_tests.dagster_dev import REPO, dagster_dev, wait_for

pytestmark = pytest.mark.slow

PHOTOS = 30
STORE_MIB = 96


@contextlib.contextmanager
def small_filesystem(path: Path, mib: int) -> Iterator[Path]:
    """A tmpfs of `mib` MiB mounted at `path` (needs root, as in CI's container)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs for a real full disk: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> int:
    """Write `path` until the disk says ENOSPC; the bytes written."""
    written, chunk = 0, b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as balloon:
        while True:
            try:
                written += balloon.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                return written


def test_a_disk_that_fills_up_mid_run_quarantines_nothing_and_the_batch_heals(tmp_path):
    policy = yaml.safe_load((REPO / "policy.yaml").read_text())
    policy["limits"] |= {"min_free_bytes": 4 << 20, "output_factor": 1.0}
    policy["healing"] |= {"backoff_seconds": 1}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    photos = {f"f{i:03}.jpg": photo_bytes(500 + i) for i in range(PHOTOS)}

    with small_filesystem(tmp_path / "store", STORE_MIB) as store_root, \
            dagster_dev(tmp_path, policy=tmp_path / "policy.yaml") as dev:
        dev.wait_until_ready()
        store = LocalObjectStore(store_root)
        drop(dev.inbox, photos)
        wait_for(lambda: busy(decode_workers()), 90, "the batch run decoding", interval=0.1)
        balloon = store_root / ".balloon"
        assert fill(balloon) > 0

        def first_run_failed() -> bool:
            runs = [r for r in dev.runs() if r["tags"].get("dagster/partition")]
            return any(r["status"] == "FAILURE" for r in runs)

        wait_for(first_run_failed, 150, "the run to fail on the full disk", interval=1)
        time.sleep(10)  # sensor ticks on a full disk: they skip and say why, never crash
        balloon.unlink()

        def all_catalogued() -> bool:
            arrivals = read_arrivals(store)
            return not arrivals.is_empty() and set(arrivals["source_name"]) >= set(photos)

        wait_for(all_catalogued, 240, "every file catalogued after the space came back",
                 interval=1)
        arrivals = read_arrivals(store)
        inbox_left = list(dev.inbox.iterdir())

    assert sorted(arrivals["source_name"]) == sorted(photos)
    bad = arrivals.filter(pl.col("status") != "ok")
    assert bad.is_empty(), bad.select("source_name", "status", "reason").to_dicts()
    assert inbox_left == []
