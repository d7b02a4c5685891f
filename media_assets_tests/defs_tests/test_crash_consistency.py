"""Crash consistency: a batch run killed with SIGKILL part-way through its batch (the run
process and its decode workers, as the OOM killer or a lost node would), then re-run, ends
exactly like an uninterrupted run: the same catalog, every original stored once or its bytes
kept in quarantine, nothing left in the inbox, and — after the hourly housekeeping — no temp
file of the killed run left in the store."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dagster import DagsterInstance

from media_assets.definitions import defs
from media_assets.operations.housekeeping import STAGING, is_temp_name
from media_assets.records.layout import quarantine_blob_key
from media_assets.records.manifest import load_manifest
from media_assets.samples.images import synth_photo
from media_assets.storage import LocalObjectStore
from media_assets_tests.defs_tests.conftest import Installation

REPO = Path(__file__).resolve().parents[2]
ARRIVED = time.time() - 120  # every installation's inbox files carry this mtime
PHOTOS = 96  # enough work (a few seconds) that polling the store finds the run part-way
# Columns that name or time the run that wrote a row, not what the batch holds.
VOLATILE = ("batch_key", "run_id", "cataloged_at", "first_cataloged_at", "intake_ms",
            "metadata_ms", "derivatives_ms")


def jpeg_with_comment(base: bytes, comment: bytes) -> bytes:
    """The same picture with a COM segment after SOI: another content id, same decode cost."""
    return base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]


@pytest.fixture(scope="module")
def inbox_files() -> dict[str, bytes]:
    """Camera-like 2 MP photos, one content under a second name, and three files that are
    quarantined (truncated, empty, not media)."""
    bases = []
    for seed in range(4):
        buffer = io.BytesIO()
        synth_photo((1600, 1200), seed, noise=3.0).save(buffer, "JPEG", quality=85)
        bases.append(buffer.getvalue())
    files = {f"shoot/photo_{i:03d}.jpg": jpeg_with_comment(bases[i % 4], b"frame %d" % i)
             for i in range(PHOTOS)}
    files["shoot/copy_of_photo_000.jpg"] = files["shoot/photo_000.jpg"]
    files["broken.jpg"] = bases[0][: len(bases[0]) // 3]
    files["empty.jpg"] = b""
    files["notes.txt"] = b"not pixels\n"
    return files


def installation(root: Path, files: dict[str, bytes], instance: DagsterInstance) -> Installation:
    root.mkdir(parents=True)
    install = Installation(root=root, instance=instance)
    install.set_policy()
    for name, data in files.items():
        path = install.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (ARRIVED, ARRIVED))
    return install


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, inbox_files) -> Installation:
    """The same files through a run that nobody killed."""
    install = installation(tmp_path_factory.mktemp("uninterrupted") / "install", inbox_files,
                           DagsterInstance.ephemeral())
    assert all(run.success for run in install.ingest())
    return install


def start_run_process(install: Installation, home: Path, job_name: str,
                      batch_key: str) -> subprocess.Popen:
    """`dagster job execute` of the batch's job, configured by environment like the Makefile
    does, in a process group of its own: the run process and its decode workers."""
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO),
           "MEDIA_ASSETS_INBOX": str(install.inbox),
           "MEDIA_ASSETS_STORE": str(install.root / "store"),
           "MEDIA_ASSETS_POLICY": str(install.policy_path)}
    with open(install.root / "run.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "dagster", "job", "execute", "-m", "media_assets.definitions",
             "-j", job_name, "--tags", json.dumps({"dagster/partition": batch_key})],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def kill_when(reached: Callable[[], bool], process: subprocess.Popen, stage: str) -> None:
    """Poll the store until the run is at `stage`, then SIGKILL its whole process group."""
    deadline = time.monotonic() + 60
    try:
        while not reached():
            assert process.poll() is None, f"the run ended before it was seen at {stage}"
            assert time.monotonic() < deadline, f"the run never reached {stage}"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # no cleanup code of the run gets to run
        process.wait()


def at_intake(store: LocalObjectStore, batch_key: str) -> bool:
    """Some originals are in the content store; the batch's manifest is not complete yet."""
    stored = sum(1 for _ in (store.root / "originals").glob("*/*/*"))
    return stored >= 3 and (load_manifest(store, batch_key) or {}).get("files") is None


def at_derivatives(store: LocalObjectStore, batch_key: str) -> bool:
    """Some thumbnails are written (and the catalog is not)."""
    return sum(1 for _ in (store.root / "derived" / "thumbnail").glob("*/*/*/*")) >= 3


def leftovers(store: LocalObjectStore) -> list[str]:
    """Temp files anywhere in the store, and anything in its staging folder."""
    found = []
    for path in store.root.rglob("*"):
        relative = path.relative_to(store.root)
        in_staging = relative.parts[0] == STAGING and len(relative.parts) > 1
        if is_temp_name(path.name) or in_staging:
            found.append(relative.as_posix())
    return sorted(found)


def two_hours_pass(store: LocalObjectStore) -> None:
    """Move every file's and folder's mtime two hours back: what a store looks like later."""
    for path in [store.root, *store.root.rglob("*")]:
        stat = path.stat()
        os.utime(path, (stat.st_atime - 7200, stat.st_mtime - 7200))


def objects(store: LocalObjectStore) -> dict[str, str]:
    """Key -> SHA-256 of everything addressed by content: originals, quarantined bytes,
    metadata and derivatives (the same in any store that holds the same files)."""
    return {key: hashlib.sha256(store.read_bytes(key)).hexdigest()
            for prefix in ("originals/", "quarantine/blobs/", "metadata/", "derived/")
            for key in store.list(prefix)}


def catalog_content(install: Installation) -> list[dict]:
    return install.arrivals().drop(*VOLATILE).sort("source_name").to_dicts()


def bytes_are_safe(install: Installation, name: str, data: bytes) -> bool:
    """The file is still in the inbox, or its bytes are in the content store or quarantine."""
    cid = hashlib.sha256(data).hexdigest()
    inbox = install.inbox / name
    if inbox.is_file() and inbox.read_bytes() == data:
        return True
    stored = list(install.store.list(f"originals/{cid[:2]}/{cid[2:4]}/"))
    kept = [key for key in stored if Path(key).name.split(".")[0] == cid]
    kept += [quarantine_blob_key(cid)] if install.store.exists(quarantine_blob_key(cid)) else []
    return any(install.store.read_bytes(key) == data for key in kept)


@pytest.mark.parametrize("stage", [at_intake, at_derivatives], ids=["intake", "derivatives"])
def test_a_run_killed_mid_batch_then_rerun_ends_as_if_never_interrupted(
        tmp_path, inbox_files, uninterrupted, stage):
    home = tmp_path / "dagster_home"
    home.mkdir()
    crashed = installation(tmp_path / "crashed", inbox_files,
                           DagsterInstance.local_temp(str(home)))
    [request] = crashed.tick().run_requests
    batch_key = request.partition_key
    process = start_run_process(crashed, home, request.job_name, batch_key)
    kill_when(lambda: stage(crashed.store, batch_key), process, stage.__name__)

    # Killed mid-batch: no catalog yet, and no file's bytes are anywhere but safe.
    assert list(crashed.store.list(f"catalog/fragments/{batch_key}/")) == []
    assert all(bytes_are_safe(crashed, name, data) for name, data in inbox_files.items())

    # The operator re-runs the partition. The killed run's scratch folder is still there (the
    # rerun cannot tell it from a live run's); the hourly housekeeping removes it once stale.
    assert crashed.process(batch_key).success
    assert leftovers(crashed.store) != []
    two_hours_pass(crashed.store)
    assert defs.resolve_job_def("clean_temp_files").execute_in_process(
        instance=crashed.instance, resources=crashed.resources()).success

    assert catalog_content(crashed) == catalog_content(uninterrupted)
    assert leftovers(crashed.store) == []
    assert [p for p in crashed.inbox.rglob("*") if p.is_file()] == []
    stored_ids = [Path(key).name.split(".")[0] for key in crashed.store.list("originals/")]
    assert sorted(stored_ids) == sorted(set(stored_ids))  # each content once
    assert objects(crashed.store) == objects(uninterrupted.store)
    assert all(bytes_are_safe(crashed, name, data) for name, data in inbox_files.items())
    reconciled = defs.resolve_job_def("reconcile_store").execute_in_process(
        instance=crashed.instance, resources=crashed.resources())
    assert reconciled.get_asset_check_evaluations()[0].passed
