"""Daily archives: deterministic files and manifest, verified offline, readable across schema
versions; the contract tells compatible changes from incompatible ones."""

import hashlib
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from media_assets.archive import main as archive_cli
from media_assets.records.archive import (
    archived_files,
    build_day,
    day_prefix,
    read_day,
    rows_of_day,
    to_contract,
    verify_day,
    write_day,
)
from media_assets.records.catalog import SCHEMA_VERSION, fragment_bytes
from media_assets.records.contract import ADDED_IN, contract, incompatibilities
from media_assets.storage import LocalObjectStore

DAY = date(2026, 11, 27)


def arrivals(*batches: tuple[str, int]) -> pl.DataFrame:
    """Catalog arrival rows as the catalog asset writes them: `count` files per batch."""
    rows = []
    for batch, count in batches:
        for i in range(count):
            cid = hashlib.sha256(f"{batch}/{i}".encode()).hexdigest()
            rows.append({"content_id": cid, "source_name": f"f{i}.jpg", "batch_key": batch,
                         "cataloged_at": datetime(2026, 11, 27, 12, tzinfo=UTC),
                         "status": "ok", "media_kind": "image", "bytes": 1000 + i,
                         "duration_seconds": None, "derivatives": []})
    import io
    return pl.read_parquet(io.BytesIO(fragment_bytes(rows)))


@pytest.fixture
def store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "store")


def archive(store, rows: pl.DataFrame, day: date = DAY) -> dict:
    files, manifest = build_day(rows_of_day(rows, day), day)
    write_day(store, day, files, manifest, {"run_id": "r1"})
    return manifest


def test_a_day_holds_the_batches_whose_key_carries_that_day():
    rows = arrivals(("20261127T010000Z-0001", 2), ("20261127T230000Z-0002", 1),
                    ("20261128T000100Z-0001", 4))
    assert rows_of_day(rows, DAY).height == 3
    assert rows_of_day(rows, date(2026, 11, 28)).height == 4


def test_the_same_rows_give_byte_identical_files_and_manifest(store):
    rows = arrivals(("20261127T010000Z-0001", 5))
    first_files, first = build_day(rows, DAY)
    again_files, again = build_day(rows.sample(fraction=1.0, shuffle=True, seed=3)
                                   .sort(["batch_key", "source_name", "content_id"]), DAY)
    assert first_files == again_files and first == again
    write_day(store, DAY, first_files, first, {"run_id": "a"})
    before = {k: store.read_bytes(k) for k in store.list(day_prefix(DAY))
              if not k.endswith("provenance.json")}
    assert write_day(store, DAY, again_files, again, {"run_id": "b"})["changed"] is False
    after = {k: store.read_bytes(k) for k in store.list(day_prefix(DAY))
             if not k.endswith("provenance.json")}
    assert before == after


def test_late_rows_make_a_new_manifest_version_and_keep_the_old_one(store):
    archive(store, arrivals(("20261127T010000Z-0001", 2)))
    manifest = archive(store, arrivals(("20261127T010000Z-0001", 2),
                                       ("20261127T020000Z-0002", 3)))
    assert manifest["rows"] == 5
    assert read_day(store, DAY).height == 5
    assert len([k for k in store.list(day_prefix(DAY) + "history/")]) == 1


def test_the_manifest_describes_every_file(store):
    manifest = archive(store, arrivals(("20261127T010000Z-0001", 3)))
    [entry] = manifest["files"]
    data = store.read_bytes(day_prefix(DAY) + entry["path"])
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert (entry["bytes"], entry["rows"]) == (len(data), 3)
    assert manifest["schema_version"] == SCHEMA_VERSION == "3"
    assert len(manifest["content_ids"]) == 3
    assert pq.ParquetFile(store.describe(day_prefix(DAY) + entry["path"])).metadata \
        .row_group(0).column(0).compression == "ZSTD"


def test_offline_verify_accepts_a_good_day_and_names_a_flipped_byte(store, capsys):
    manifest = archive(store, arrivals(("20261127T010000Z-0001", 3)))
    folder = Path(store.describe(day_prefix(DAY)))
    assert verify_day(folder) == [] and archive_cli(["verify", str(folder.parent)]) == 0
    data_file = folder / manifest["files"][0]["path"]
    damaged = bytearray(data_file.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    data_file.write_bytes(bytes(damaged))
    assert archive_cli(["verify", str(folder)]) == 1
    assert "SHA-256 differs" in capsys.readouterr().err


def test_offline_verify_names_a_dropped_row(store, capsys):
    manifest = archive(store, arrivals(("20261127T010000Z-0001", 3)))
    data_file = Path(store.describe(day_prefix(DAY) + manifest["files"][0]["path"]))
    table = pq.read_table(data_file)
    pq.write_table(table.slice(0, 2), data_file, compression="zstd")
    assert archive_cli(["verify", str(data_file.parent / "manifest.json")]) == 1
    err = capsys.readouterr().err
    assert "2 rows, manifest says 3" in err and "content ids" in err


def test_verify_says_so_when_there_is_nothing_to_verify(tmp_path, capsys):
    assert archive_cli(["verify", str(tmp_path)]) == 1
    assert "no archived day" in capsys.readouterr().err


def test_days_written_with_an_older_schema_read_together_with_newer_ones(store):
    """A v1 day (before the video/audio columns) and a v2 day, read as one dataset through
    their manifests with pyarrow and with polars: the old rows get nulls."""
    old_day = date(2026, 11, 26)
    old_rows = arrivals(("20261126T010000Z-0001", 2)).drop(*ADDED_IN["2"])
    files, manifest = build_day(old_rows, old_day, schema=contract("1"))
    write_day(store, old_day, files, manifest, {})
    archive(store, arrivals(("20261127T010000Z-0001", 3)))

    root = Path(store.describe("archive/catalog"))
    paths = [str(p) for p in archived_files(root)]
    assert len(paths) == 2
    dataset = ds.dataset(paths, format="parquet", schema=contract(),
                         partitioning=ds.partitioning(flavor="hive"), partition_base_dir=str(root))
    both = pl.from_arrow(dataset.to_table())
    assert both.height == 5
    old = both.filter(pl.col("batch_key").str.starts_with("20261126"))
    assert old["duration_seconds"].null_count() == 2
    scanned = pl.scan_parquet(paths, missing_columns="insert",
                              schema=pl.from_arrow(contract().empty_table()).schema).collect()
    assert scanned.height == 5 and scanned["name_stem"].null_count() >= 2


def test_adding_a_nullable_column_is_compatible_and_retyping_one_is_not():
    assert incompatibilities(contract("1"), contract("2")) == []
    retyped = contract().set(contract().get_field_index("bytes"),
                             pa.field("bytes", pa.string()))
    assert incompatibilities(contract(), retyped) == [
        "column 'bytes' changed type int64 -> string"]
    dropped = contract().remove(contract().get_field_index("rights"))
    assert incompatibilities(contract(), dropped) == ["column 'rights' was removed"]
    required = contract().append(pa.field("owner", pa.string(), nullable=False))
    assert incompatibilities(contract(), required) == ["new column 'owner' must be nullable"]


def test_rows_that_do_not_fit_the_contract_are_refused_with_the_column_named():
    rows = arrivals(("20261127T010000Z-0001", 1)).with_columns(pl.lit("big").alias("bytes"))
    with pytest.raises(ValueError, match="column 'bytes'"):
        to_contract(rows)


@pytest.mark.slow
def test_verify_exits_truthfully_every_time_in_a_fresh_process(store):
    """The status is the finding, never an abort in the interpreter's teardown (pyarrow and
    polars thread pools were seen to end a clean verify with status 134)."""
    manifest = archive(store, arrivals(("20261127T010000Z-0001", 3)))
    folder = Path(store.describe(day_prefix(DAY)))

    def statuses() -> list[int]:
        return [subprocess.run([sys.executable, "-m", "media_assets.archive", "verify",
                                str(folder)], capture_output=True).returncode
                for _ in range(20)]

    assert statuses() == [0] * 20
    data_file = folder / manifest["files"][0]["path"]
    data_file.write_bytes(data_file.read_bytes()[:-1] + b"\x00")
    assert statuses() == [1] * 20
