"""The batch pass, without Dagster: a real local store and inbox, real worker processes."""

import hashlib
import os
from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from media_assets.codec.pool import Outcome, WorkerPool
from media_assets.core.errors import Rejected
from media_assets.core.policy import Policy
from media_assets.operations.batch_pass import (
    FIXITY_STEP,
    VERIFIED_STEP,
    BatchNotReady,
    Selection,
    run_pass,
)
from media_assets.records.layout import metadata_key, spec_output_key
from media_assets.records.manifest import (
    load_manifest,
    load_step_results,
    new_manifest,
    open_batch,
    open_batch_keys,
    quarantine_records,
)
from media_assets.storage import LocalInbox, LocalObjectStore
from media_assets_tests.codec_tests.test_file_pass import photo

EVERYTHING = Selection(originals=True, metadata_kinds=frozenset({"image", "video", "audio"}),
                       derivative_assets=("thumbnails", "previews"))


class Workers:
    """The pool as the Dagster resource offers it."""

    def __init__(self) -> None:
        self.pool = WorkerPool(2, 2048)

    def run(self, tasks, limits, on_outcome=None, timeout=None, retry_reason=None,
            on_retry=None) -> dict[Hashable, Outcome]:
        return self.pool.run(tasks, timeout or limits.per_file_timeout_seconds, on_outcome,
                             retry_reason=retry_reason, on_retry=on_retry)


@pytest.fixture
def setup(tmp_path):
    store, inbox, workers = LocalObjectStore(tmp_path / "store"), LocalInbox(tmp_path / "in"), \
        Workers()
    inbox.root.mkdir()
    yield store, inbox, workers
    workers.pool.close()


def batch(store, inbox, files: dict[str, bytes], key="20261207T000000Z-0001") -> str:
    sources = []
    for name, data in files.items():
        path = inbox.root / name
        path.write_bytes(data)
        stat = path.stat()
        sources.append({"inbox": name, "size": stat.st_size, "mtime": stat.st_mtime})
    open_batch(store, new_manifest(key, "image", sources, datetime.now(UTC)))
    return key


def run(store, inbox, workers, key, selection=EVERYTHING, run_id="run-1"):
    log: list[tuple] = []
    report = run_pass(store, inbox, Policy(), workers, batch_key=key, run_id=run_id,
                      selection=selection, log=lambda *args, **kw: log.append(args))
    return report, log


def test_each_file_is_stored_described_and_rendered_and_leaves_the_inbox(setup):
    store, inbox, workers = setup
    data = {"a.jpg": photo(width_for(1)), "b.jpg": photo(width_for(2))}
    key = batch(store, inbox, data)

    report, _ = run(store, inbox, workers, key)

    policy = Policy()
    for name, content in data.items():
        cid = hashlib.sha256(content).hexdigest()
        [entry] = [e for e in report.entries if e.source_name == name]
        assert entry.status == "ok" and entry.content_id == cid
        assert store.read_bytes(entry.original_key) == content
        assert store.exists(metadata_key(cid, "image-v1"))
        for spec in policy.derivatives:
            assert store.exists(spec_output_key(spec, cid))
    assert os.listdir(inbox.root) == [] and open_batch_keys(store) == []  # names released
    assert {f["source_name"] for f in load_manifest(store, key)["files"]} == set(data)
    assert report.tallies["thumbnails"].made == 2 and report.tallies["originals"].made == 2
    # What the checks of the same run read instead of decoding every output again:
    verified = load_step_results(store, key, VERIFIED_STEP)
    assert verified["run_id"] == "run-1"
    thumbnail_hash = Policy().derivative("thumbnail").spec_hash
    assert [v[thumbnail_hash] for v in verified["thumbnails"].values()] == [None, None]
    assert len(load_step_results(store, key, FIXITY_STEP)["content_ids"]) == 2


def test_a_bad_file_is_quarantined_with_its_reason_and_the_batch_goes_on(setup):
    store, inbox, workers = setup
    key = batch(store, inbox, {"good.jpg": photo(), "cut.jpg": photo()[:3000]})

    report, log = run(store, inbox, workers, key)

    statuses = {e.source_name: (e.status, e.reason) for e in report.entries}
    assert statuses == {"good.jpg": ("ok", None), "cut.jpg": ("quarantined", "truncated")}
    [record] = quarantine_records(store, key).values()
    assert record["stage"] == "originals" and store.exists(record["bytes_key"])
    assert any(event[1] == "quarantined" for event in log)


def test_the_same_bytes_again_cost_one_hash_and_no_decode(setup):
    store, inbox, workers = setup
    content = photo()
    run(store, inbox, workers, batch(store, inbox, {"first.jpg": content}))

    report, _ = run(store, inbox, workers,
                    batch(store, inbox, {"again.jpg": content}, key="20261207T000000Z-0002"),
                    run_id="run-2")

    assert report.entries[0].duplicate
    assert report.tallies["thumbnails"].made == 0 and report.tallies["previews"].made == 0
    assert report.tallies["image_metadata"].made == 0


def test_one_derivative_is_rebuilt_alone(setup):
    store, inbox, workers = setup
    content = photo()
    key = batch(store, inbox, {"a.jpg": content})
    run(store, inbox, workers, key)
    cid = hashlib.sha256(content).hexdigest()
    policy = Policy()
    thumbnail = store.root / spec_output_key(policy.derivative("thumbnail"), cid)
    preview = store.root / spec_output_key(policy.derivative("preview"), cid)
    thumbnail.unlink()
    preview_written = preview.stat().st_mtime_ns

    report, _ = run(store, inbox, workers, key, Selection(
        originals=False, metadata_kinds=frozenset(), derivative_assets=("thumbnails",)))

    assert thumbnail.exists() and preview.stat().st_mtime_ns == preview_written
    assert report.tallies["thumbnails"].made == 1 and "previews" not in report.tallies


def test_a_batch_without_a_manifest_is_refused_with_its_key(setup):
    store, inbox, workers = setup
    with pytest.raises(BatchNotReady, match="no-such-batch"):
        run(store, inbox, workers, "no-such-batch")


def width_for(seed: int) -> int:
    return 1200 + seed * 16  # a different width: different bytes


def test_staging_leaves_nothing_behind(setup):
    store, inbox, workers = setup
    run(store, inbox, workers, batch(store, inbox, {"a.jpg": photo()}))
    assert list(Path(store.staging_dir()).iterdir()) == []


class DiesInItsLastStage:
    """Workers whose process is ended (a time limit, the OOM killer) in a file's last stage:
    the chain runs up to its end here, then the outcome is the death, not the result."""

    def run(self, tasks, limits, on_outcome=None, timeout=None, **_retry):
        for key, fn, args in tasks:
            fn(*args)
            on_outcome(key, Outcome(error=Rejected("timeout", "a stage ran past its limit")))
        return {}


def test_a_worker_ended_mid_chain_keeps_the_stored_original_and_names_the_stage(setup):
    """The bytes a worker had staged and verified before it died are stored, and the
    quarantine record names the stage that was running, not intake."""
    store, inbox, _ = setup
    content = photo()
    key = batch(store, inbox, {"a.jpg": content})

    report, _ = run(store, inbox, DiesInItsLastStage(), key)

    [entry] = report.entries
    assert entry.status == "ok" and store.read_bytes(entry.original_key) == content
    [record] = quarantine_records(store, key).values()
    assert (record["stage"], record["reason"]) == ("derivatives", "timeout")
    assert os.listdir(inbox.root) == []  # its bytes are safe: it left the inbox


def killed_once(marker: str, fn, *args):
    """A worker killed from outside the first time it takes this file (the OOM killer)."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), 9)
    return fn(*args)


class KillsTheFirstFilesWorkerOnce(Workers):
    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = marker

    def run(self, tasks, limits, on_outcome=None, timeout=None, retry_reason=None,
            on_retry=None):
        tasks = [(key, killed_once, (str(self.marker), fn, *args)) if key == 0
                 else (key, fn, args) for key, fn, args in tasks]
        return super().run(tasks, limits, on_outcome, timeout, retry_reason, on_retry)


def test_a_good_file_whose_worker_is_killed_is_retried_alone_and_catalogued_ok(setup,
                                                                              tmp_path):
    store, inbox, _ = setup
    workers = KillsTheFirstFilesWorkerOnce(tmp_path / "killed")
    data = {f"{i}.jpg": photo(width_for(i)) for i in range(4)}
    key = batch(store, inbox, data)
    try:
        report, log = run(store, inbox, workers, key)
    finally:
        workers.pool.close()

    assert (tmp_path / "killed").exists()  # one worker did die
    assert [e.status for e in report.entries] == ["ok"] * 4
    assert quarantine_records(store, key) == {}
    [(first_failure, final)] = report.retried.values()
    assert (first_failure, final) == ("worker_crashed", "ok")
    retried = [e for e in load_manifest(store, key)["files"] if e["retried"]]
    assert [e["retried"] for e in retried] == ["worker_crashed"]
    assert ("warning", "retried_alone_ok") in {entry[:2] for entry in log}
    assert all(store.exists(spec_output_key(Policy().spec("thumbnail"), e.content_id))
               for e in report.entries)
