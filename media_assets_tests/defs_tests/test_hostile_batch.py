"""The hostile-input set dropped in one go with good files, hostile names and special inbox
entries: every hostile file ends quarantined with its specific reason (its bytes kept), every
good file is catalogued, the special entries are reported and never read, the runs succeed,
and it all takes well under a minute under a test policy's time and memory limits."""

import contextlib
import hashlib
import os
import shutil
import time
import unicodedata

import pytest

from media_assets.records.layout import quarantine_blob_key
from media_assets_tests.hostile import write_good_set, write_hostile_set

NFC = unicodedata.normalize("NFC", "names/café.jpg")
NFD = unicodedata.normalize("NFD", "names/café.jpg")
HOSTILE_NAMES = {  # raw inbox name -> what the catalog shows
    "names/esc\x1b[31mred.jpg": "names/esc\ufffd[31mred.jpg",
    "names/new\nline.jpg": "names/new\ufffdline.jpg",
    "names/evil\u202egpj.png": "names/evil\ufffdgpj.png",
    NFC: NFC,
    "names/" + "long" * 60 + ".jpg": None,  # 240 characters: kept whole (< 512)
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    from dagster import DagsterInstance

    from media_assets_tests.defs_tests.conftest import Installation

    root = tmp_path_factory.mktemp("hostile")
    install = Installation(root=root, instance=DagsterInstance.ephemeral())
    install.set_policy(
        limits={"max_file_bytes": 64 * 1024**2, "max_frames": 10_000,
                "per_file_timeout_seconds": 20, "worker_memory_mb": 1536, "workers": 2},
        video={"timeout_seconds": 30}, audio={"timeout_seconds": 30},
        # one batch per lane: hostile headers declare hours of work, which alone would
        # close a batch per file
        batching={"max_files": 500, "av_max_files": 200, "av_max_bytes": 1024**3,
                  "target_batch_seconds": 1e9})
    install.inbox.mkdir()
    good = write_good_set(root / "good-source")
    expected = write_hostile_set(install.inbox / "hostile", good)
    shutil.copytree(root / "good-source", install.inbox / "good")
    sent = {f"hostile/{n}": (install.inbox / "hostile" / n).read_bytes() for n in expected}

    # good bytes under hostile names; two names that collide after NFC normalisation
    jpeg = good["good.jpg"].read_bytes()
    for index, name in enumerate([*HOSTILE_NAMES, NFD]):
        path = install.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg + bytes([index]))  # distinct contents, all valid JPEGs
    (install.inbox / "folder.jpg").mkdir()
    shutil.copy(good["good.png"], install.inbox / "folder.jpg" / "within.png")
    install.age_inbox()

    # special entries, none of which may be read, moved or block the sensor
    outside = root / "outside"
    outside.mkdir()
    secret = outside / "secret.jpg"
    secret.write_bytes(good["good.jpg"].read_bytes() + b"SECRET")
    (install.inbox / "special").mkdir()
    (install.inbox / "special" / "to_outside.jpg").symlink_to(secret)
    (install.inbox / "special" / "dir_outside").symlink_to(outside)
    os.link(secret, install.inbox / "special" / "hardlink.jpg")
    os.mkfifo(install.inbox / "special" / "pipe.mp4")
    with contextlib.suppress(PermissionError):  # not root: the inbox test skips visibly
        os.mknod(install.inbox / "special" / "zero.jpg", 0o20600, os.makedev(1, 5))

    started = time.monotonic()
    tick = install.tick()
    runs = [install.process(r.partition_key, job_name=r.job_name) for r in tick.run_requests]
    elapsed = time.monotonic() - started
    return install, expected, sent, tick, runs, elapsed, secret


def rows(install) -> dict[str, dict]:
    return {r["source_name"]: r for r in install.arrivals().iter_rows(named=True)}


def test_the_runs_succeed_fast(hostile_run):
    install, expected, _, tick, runs, elapsed, _ = hostile_run
    assert runs and all(run.success for run in runs)
    # one batch per lane, hostile and good files mixed; the files declaring huge sizes go
    # to the heavy lane by their headers
    assert sorted(r.tags["media_assets/lane"] for r in tick.run_requests) == [
        "av", "heavy", "image"]
    assert elapsed < 60, elapsed  # ~10 s here; the test policy's limits bound it


def test_every_hostile_file_is_quarantined_with_its_reason(hostile_run):
    install, expected, _, _, _, _, _ = hostile_run
    found = rows(install)
    got = {name.removeprefix("hostile/"): (r["status"], r["reason"])
           for name, r in found.items() if name.startswith("hostile/")}
    assert got == {name: ("quarantined", reason) for name, reason in expected.items()}


def test_nothing_is_lost_quarantined_bytes_are_kept_and_the_inbox_is_emptied(hostile_run):
    install, _, sent, _, _, _, _ = hostile_run
    found = rows(install)
    for name, data in sent.items():
        row = found[name]
        assert row["content_id"] == _sha(data)
        blob = quarantine_blob_key(row["content_id"])
        assert install.store.exists(blob), name
        assert install.store.read_bytes(blob) == data
        assert not (install.inbox / name).exists()


def test_good_files_are_catalogued_under_sanitised_names(hostile_run):
    install, _, _, _, _, _, _ = hostile_run
    found = rows(install)
    good = {name for name in found if name.startswith("good/")}
    assert len(good) == 20
    assert {found[n]["status"] for n in good} == {"ok"}
    assert found["folder.jpg/within.png"]["status"] == "ok"
    named = {n: r for n, r in found.items() if n.startswith("names/")}
    assert len(named) == len(HOSTILE_NAMES) + 1 and {r["status"] for r in named.values()} == {
        "ok"}
    for raw, shown in HOSTILE_NAMES.items():
        assert (shown or raw) in named
    [nfd] = [n for n in named if n.startswith(NFC + "~")]  # collided: kept apart, flagged
    assert unicodedata.is_normalized("NFC", nfd)
    for name in found:
        assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in name), name


def test_special_entries_are_reported_never_read_and_left_alone(hostile_run):
    install, _, _, _, _, _, secret = hostile_run
    again = install.tick()  # the next tick, with the batches done, still names them
    text = again.skip_message
    assert "entries not taken (never opened)" in text
    assert "special/dir_outside: symbolic link to a folder" in text
    special = install.inbox / "special"
    assert (special / "to_outside.jpg").is_symlink() and (special / "hardlink.jpg").exists()
    assert secret.exists() and secret.stat().st_nlink == 2
    secret_id = _sha(secret.read_bytes())
    assert secret_id not in set(rows(install)[n]["content_id"] for n in rows(install))
    assert not any(secret_id in key for key in install.store.list(""))
    manifests_text = "".join(install.store.read_bytes(k).decode()
                             for k in install.store.list("batches/") if k.endswith(".json"))
    assert "special/" not in manifests_text


def test_no_store_key_carries_a_source_name(hostile_run):
    install, _, _, _, _, _, _ = hostile_run
    keys = list(install.store.list(""))
    for fragment in ("names", "café", "esc", "hostile", "special", "long"):  # (not hex)
        assert not any(fragment in key for key in keys), fragment
