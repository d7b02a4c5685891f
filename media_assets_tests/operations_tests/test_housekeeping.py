"""Housekeeping: a killed writer's temp files go once idle past the policy's threshold; live
writers' files, and everything that is not a temp file, stay."""

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from media_assets.core.policy import Policy, policy_from_mapping
from media_assets.operations.housekeeping import is_temp_name, remove_stale_temp_files
from media_assets.storage import LocalObjectStore

NOW = datetime.now(UTC)
HOUR = 3600.0


def leftover(path: Path, data: bytes = b"half written", idle: float = 2 * HOUR) -> Path:
    """A file some writer left, last written `idle` seconds before NOW."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = NOW.timestamp() - idle
    os.utime(path, (stamp, stamp))
    return path


def age(path: Path, idle: float) -> None:
    stamp = NOW.timestamp() - idle
    os.utime(path, (stamp, stamp))


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "store")
    store.put_bytes("originals/ab/cd/abcd.jpg", b"an original")
    store.put_bytes("batches/b1.json", b"{}")
    for key in ("originals/ab/cd/abcd.jpg", "batches/b1.json"):
        age(store.root / key, 30 * 24 * HOUR)  # old objects are never temp files
    return store


@pytest.mark.parametrize("name", [
    ".abcd.jpg.tmp-k2j4x9q1",  # the store's atomic writes and staged copies
    ".thumbnail.webp.tmp-3fa9c01b2e4d",  # a derivative being encoded
    ".intake.tmp-0sgsajsv",  # a file being staged
    ".out.mp4.tmp",  # a rendition, audio preview or waveform being written
])
def test_the_names_writers_give_temp_files_are_recognised(name):
    assert is_temp_name(name)


@pytest.mark.parametrize("name", ["abcd.jpg", "b1.json", "notes.tmp", "tmp-1", ".gitkeep"])
def test_object_names_are_not_temp_names(name):
    assert not is_temp_name(name)


def test_stale_temp_files_and_staging_folders_are_removed_and_objects_kept(store):
    root = store.root
    leftover(root / "originals/ab/cd/.abcd.jpg.tmp-k2j4x9q1")
    leftover(root / ".cold/originals/ef/01/.ef01.png.tmp-a1b2c3d4")
    leftover(root / "catalog/fragments/b1/.x.parquet.tmp-zz", b"x" * 100)
    leftover(root / ".staging/intake-k1/.intake.tmp-0sgsajsv", b"y" * 1000)
    age(root / ".staging/intake-k1", 2 * HOUR)
    (root / ".staging/derive-q2").mkdir()  # a killed run's empty scratch folder
    age(root / ".staging/derive-q2", 3 * HOUR)

    sweep = remove_stale_temp_files(root, now=NOW, max_age_seconds=HOUR)

    assert [item.path for item in sweep.removed] == [
        ".staging/derive-q2", ".staging/intake-k1",
        ".cold/originals/ef/01/.ef01.png.tmp-a1b2c3d4",
        "catalog/fragments/b1/.x.parquet.tmp-zz",
        "originals/ab/cd/.abcd.jpg.tmp-k2j4x9q1"]
    assert sweep.kept == []
    assert sweep.removed_bytes == len(b"half written") * 2 + 100 + 1000
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "batches/b1.json", "originals/ab/cd/abcd.jpg"]
    assert list((root / ".staging").iterdir()) == []


def test_a_temp_file_written_recently_is_kept_it_may_be_a_live_writers(store):
    live = leftover(store.root / "derived/preview/h/ab/cd/.abcd.jpg.tmp-1", idle=HOUR - 1)
    sweep = remove_stale_temp_files(store.root, now=NOW, max_age_seconds=HOUR)
    assert sweep.removed == [] and live.exists()
    assert [(item.path, item.idle_seconds) for item in sweep.kept] == [
        ("derived/preview/h/ab/cd/.abcd.jpg.tmp-1", HOUR - 1)]


def test_a_staging_folder_goes_only_when_everything_in_it_is_idle(store):
    """A run that staged files long ago and still writes one keeps its folder whole."""
    scratch = store.root / ".staging/derive-live"
    leftover(scratch / "old/thumbnail.webp", idle=5 * HOUR)
    leftover(scratch / "new/.preview.jpg.tmp-2", idle=60)
    age(scratch / "old", 5 * HOUR)
    age(scratch, 5 * HOUR)
    sweep = remove_stale_temp_files(store.root, now=NOW, max_age_seconds=HOUR)
    assert sweep.removed == []
    assert [(item.path, item.files) for item in sweep.kept] == [(".staging/derive-live", 2)]
    assert (scratch / "old/thumbnail.webp").exists()


def test_a_dry_run_says_what_would_go_and_removes_nothing(store):
    stale = leftover(store.root / "originals/ab/cd/.abcd.jpg.tmp-k2j4x9q1")
    sweep = remove_stale_temp_files(store.root, now=NOW, max_age_seconds=HOUR, dry_run=True)
    assert [item.path for item in sweep.removed] == ["originals/ab/cd/.abcd.jpg.tmp-k2j4x9q1"]
    assert stale.exists()


def test_a_store_that_does_not_exist_yet_has_nothing_to_sweep(tmp_path):
    sweep = remove_stale_temp_files(tmp_path / "nothing", now=NOW, max_age_seconds=HOUR)
    assert sweep.removed == [] and sweep.kept == []


def test_the_threshold_must_outlast_every_per_file_time_limit():
    assert Policy().limits.temp_max_age_seconds == HOUR
    with pytest.raises(ValueError, match="temp_max_age_seconds"):
        policy_from_mapping({"limits": {"temp_max_age_seconds": 600}})  # videos get 1800 s
    with pytest.raises(ValueError, match="temp_max_age_seconds"):
        policy_from_mapping({"limits": {"temp_max_age_seconds": 4000},
                             "video": {"timeout_seconds": 7200}})


def test_the_command_line_removes_stale_temp_files_with_the_policys_threshold(store, capsys):
    import json

    from media_assets.cli import main

    stale = leftover(store.root / ".staging/intake-old/.intake.tmp-1")
    age(stale.parent, 2 * HOUR)
    fresh = leftover(store.root / "originals/ab/cd/.abcd.jpg.tmp-2", idle=60)
    args = ["--store", str(store.root), "--policy", "policy.yaml", "clean-temp"]
    assert main([*args, "--dry-run"]) == 0 and stale.exists()
    assert json.loads(capsys.readouterr().out)["dry_run"] is True
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert [item["path"] for item in report["removed"]] == [".staging/intake-old"]
    assert report["kept_recent"] == ["originals/ab/cd/.abcd.jpg.tmp-2"]
    assert not stale.exists() and fresh.exists()


def test_the_command_line_works_from_any_folder_without_a_policy_setting(store, tmp_path,
                                                                         monkeypatch, capsys):
    """Outside the repository, with MEDIA_ASSETS_POLICY unset: the store's last valid policy
    version, else the defaults, and stderr says which."""
    import json

    from media_assets.cli import main
    from media_assets.records.policy_versions import keep_version

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("MEDIA_ASSETS_POLICY", raising=False)
    args = ["--store", str(store.root), "clean-temp", "--dry-run"]

    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["max_age_seconds"] == 3600  # the defaults
    keep_version(store, b"limits:\n  temp_max_age_seconds: 7200\n")
    assert main(args) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["max_age_seconds"] == 7200
    assert "the store's last valid version" in out.err
