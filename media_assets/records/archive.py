"""Daily catalog archives: deterministic Parquet files plus a manifest (row counts, sizes,
SHA-256, schema, content ids) that makes a day verifiable offline. Pure, no Dagster.

Layout under the store: `archive/catalog/date=YYYY-MM-DD/part-<sha>.parquet`, the
`manifest.json` (the commit point: readers go through it), a `provenance.json` sidecar (run,
time, code versions: what would make the manifest non-deterministic) and `history/` with
superseded manifests. Data files are named by their content, so rewriting the same rows
writes nothing new, and a changed day never overwrites a file a reader may be reading.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from media_assets.records.catalog import SCHEMA_VERSION
from media_assets.records.contract import contract, incompatibilities, schema_version

ARCHIVE_PREFIX = "archive/catalog/"
ROWS_PER_FILE = 1_000_000
ROW_GROUP_ROWS = 128_000
SORT_KEY = ("batch_key", "source_name", "content_id")


def day_prefix(day: date) -> str:
    return f"{ARCHIVE_PREFIX}date={day.isoformat()}/"


def batch_day(batch_key: str) -> date:
    """The UTC day a batch key carries (`20261127T021503Z-0001` -> 2026-11-27)."""
    return date(int(batch_key[:4]), int(batch_key[4:6]), int(batch_key[6:8]))


def rows_of_day(arrivals: pl.DataFrame, day: date) -> pl.DataFrame:
    """The arrival rows of the batches whose key carries `day`, in a stable order."""
    if arrivals.is_empty():
        return arrivals
    stamp = day.strftime("%Y%m%d")
    return arrivals.filter(pl.col("batch_key").str.starts_with(stamp)).sort(list(SORT_KEY))


def to_contract(rows: pl.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """The rows as an Arrow table with exactly the contract's schema (missing nullable columns
    are added as nulls); raises ValueError naming what does not fit."""
    target = schema or contract()  # a new name: pyarrow has no types, so pyright keeps None
    table = rows.to_arrow()
    columns = []
    for field in target:
        if field.name in table.column_names:
            column = table.column(field.name)
            try:
                columns.append(column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"column {field.name!r} ({column.type}) does not fit the "
                                 f"contract's {field.type}: {exc}") from exc
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise ValueError(f"required column {field.name!r} is missing")
    result = pa.Table.from_arrays(columns, schema=target)
    result.validate(full=True)
    return result


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS,
                   write_statistics=True, use_compliant_nested_type=False)
    return sink.getvalue()


def build_day(rows: pl.DataFrame, day: date,
              schema: pa.Schema | None = None) -> tuple[dict[str, bytes], dict[str, Any]]:
    """(file name -> Parquet bytes, manifest) for one day; the same rows, in any order, give
    the same bytes."""
    if not rows.is_empty():
        rows = rows.sort(list(SORT_KEY))
    table = to_contract(rows, schema).combine_chunks()
    files: dict[str, bytes] = {}
    entries = []
    for start in range(0, max(table.num_rows, 1), ROWS_PER_FILE):
        chunk = table.slice(start, ROWS_PER_FILE)
        data = parquet_bytes(chunk)
        digest = hashlib.sha256(data).hexdigest()
        name = f"part-{digest[:16]}.parquet"
        files[name] = data
        entries.append({"path": name, "rows": chunk.num_rows, "bytes": len(data),
                        "sha256": digest})
    manifest = {
        "date": day.isoformat(),
        "rows": table.num_rows,
        "files": entries,
        "schema_version": schema_version(table.schema),
        "schema": schema_fields(table.schema),
        "content_ids": sorted(set(table.column("content_id").to_pylist())),
    }
    return files, manifest


def schema_fields(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def read_manifest(store: Any, day: date) -> dict[str, Any] | None:
    key = day_prefix(day) + "manifest.json"
    return json.loads(store.read_bytes(key)) if store.exists(key) else None


def write_day(store: Any, day: date, files: dict[str, bytes], manifest: dict[str, Any],
              provenance: dict[str, Any], erased: list[str] | None = None) -> dict[str, Any]:
    """Write data files under new names, then commit by replacing the manifest. The previous
    manifest goes to `history/` (with the ids erased from it, if any); its data files are
    listed for collection. Returns what happened."""
    prefix = day_prefix(day)
    previous = read_manifest(store, day)
    new_manifest = manifest_bytes(manifest)
    if previous is not None and manifest_bytes(previous) == new_manifest:
        return {"changed": False, "superseded_files": []}
    for name, data in files.items():
        store.put_bytes_if_absent(prefix + name, data)  # same name = same bytes
    kept = {f["path"] for f in manifest["files"]}
    superseded = [f["path"] for f in (previous or {}).get("files", []) if f["path"] not in kept]
    if previous is not None:
        old_id = hashlib.sha256(manifest_bytes(previous)).hexdigest()[:16]
        history = {**previous, "superseded_by": hashlib.sha256(new_manifest).hexdigest()[:16]}
        if erased:
            history["erased_content_ids"] = sorted(erased)
        store.put_bytes(f"{prefix}history/manifest-{old_id}.json", manifest_bytes(history))
    store.put_bytes(prefix + "manifest.json", new_manifest)  # the commit point
    store.put_bytes(prefix + "provenance.json", manifest_bytes(provenance))
    return {"changed": True, "superseded_files": superseded}


def collect(store: Any, day: date, names: list[str]) -> None:
    """Delete superseded data files now (an erasure cannot wait for readers)."""
    current = {f["path"] for f in (read_manifest(store, day) or {}).get("files", [])}
    for name in names:
        if name not in current:
            store.delete(day_prefix(day) + name)


COLLECT_PREFIX = f"{ARCHIVE_PREFIX}_collect/"


def collect_later(store: Any, day: date, names: list[str], now: datetime) -> None:
    """Note superseded files for collection once readers of the old manifest are done."""
    if names:
        key = f"{COLLECT_PREFIX}{now.strftime('%Y%m%dT%H%M%S%f')}-{day.isoformat()}.json"
        store.put_bytes(key, json.dumps({"day": day.isoformat(), "files": names,
                                         "superseded_at": now.isoformat()}).encode())


def collect_due(store: Any, now: datetime, grace: timedelta) -> list[str]:
    """Delete the superseded files noted at least `grace` ago; returns what was deleted."""
    deleted = []
    for key in store.list(COLLECT_PREFIX):
        note = json.loads(store.read_bytes(key))
        if now - datetime.fromisoformat(note["superseded_at"]) < grace:
            continue
        day = date.fromisoformat(note["day"])
        collect(store, day, note["files"])
        deleted += [day_prefix(day) + name for name in note["files"]]
        store.delete(key)
    return deleted


def archived_files(root: Path) -> list[Path]:
    """The current data files of every archived day under `root`, found through their
    manifests (files a newer manifest superseded are not listed)."""
    files = []
    for folder in day_folders(root):
        manifest = json.loads((folder / "manifest.json").read_text())
        files.extend(folder / entry["path"] for entry in manifest["files"])
    return files


def read_day(store: Any, day: date) -> pl.DataFrame | None:
    """A day's rows, read through its manifest."""
    manifest = read_manifest(store, day)
    if manifest is None:
        return None
    frames = []
    for entry in manifest["files"]:
        with store.local_path(day_prefix(day) + entry["path"]) as path:
            frames.append(pl.read_parquet(path))
    return pl.concat(frames, how="diagonal_relaxed") if frames else None


# ---- offline verification (no store, no Dagster: a folder and its manifest.json) ----------

def verify_day(folder: Path) -> list[str]:
    """Problems found by recomputing a day folder's files against its manifest."""
    manifest_path = Path(folder) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        return [f"{manifest_path}: unreadable manifest ({exc})"]

    def read(name: str) -> bytes | None:
        path = Path(folder) / name
        return path.read_bytes() if path.is_file() else None

    return verify_manifest(manifest, read, str(folder))


def verify_stored_day(store: Any, day: date) -> list[str]:
    """The same verification through the store (the asset check's fixity)."""
    manifest = read_manifest(store, day)
    if manifest is None:
        return [f"{day}: no manifest"]
    prefix = day_prefix(day)
    return verify_manifest(manifest, lambda name: store.read_bytes(prefix + name)
                           if store.exists(prefix + name) else None, prefix.rstrip("/"))


def verify_manifest(manifest: dict[str, Any], read: Callable[[str], bytes | None],
                    where: str) -> list[str]:
    """Recompute each listed file's size, SHA-256, rows, schema and the content ids."""
    problems: list[str] = []
    content_ids: set[str] = set()
    total = 0
    for entry in manifest.get("files", []):
        label = f"{where}/{entry['path']}"
        data = read(entry["path"])
        if data is None:
            problems.append(f"{label}: missing")
            continue
        if len(data) != entry["bytes"]:
            problems.append(f"{label}: {len(data)} bytes, manifest says {entry['bytes']}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{label}: SHA-256 differs from the manifest")
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as exc:
            problems.append(f"{label}: not readable Parquet ({exc})")
            continue
        if table.num_rows != entry["rows"]:
            problems.append(f"{label}: {table.num_rows} rows, manifest says {entry['rows']}")
        if schema_fields(table.schema) != manifest.get("schema"):
            problems.append(f"{label}: schema differs from the manifest's")
        total += table.num_rows
        content_ids.update(table.column("content_id").to_pylist())
    if total != manifest.get("rows"):
        problems.append(f"{where}: {total} rows in the files, manifest says "
                        f"{manifest.get('rows')}")
    if sorted(content_ids) != manifest.get("content_ids"):
        problems.append(f"{where}: content ids in the files differ from the manifest's")
    return problems


def day_folders(path: Path) -> Iterator[Path]:
    """`path` itself if it is a day (holds manifest.json), else every day folder under it."""
    path = Path(path)
    if path.name == "manifest.json":
        path = path.parent
    if (path / "manifest.json").is_file():
        yield path
        return
    for manifest in sorted(path.rglob("date=*/manifest.json")):
        yield manifest.parent


def schema_problems(manifest: dict[str, Any]) -> list[str]:
    """Why an archived day's schema is not (a compatible version of) the current contract."""
    version = manifest.get("schema_version") or "1"
    try:
        expected = contract(version)
    except ValueError:
        return [f"unknown schema version {version!r}"]
    if manifest.get("schema") != schema_fields(expected):
        return [f"the schema differs from contract version {version}"]
    return [f"version {version} -> {SCHEMA_VERSION}: {problem}"
            for problem in incompatibilities(expected, contract())]


def audit_anchors(store: Any) -> dict[date, dict[str, Any]]:
    """Each archived day's anchor of the audit chain (`audit_head` in its manifest): what
    `records.audit.verify_chain` holds the log to, so a truncated or rewritten day shows."""
    anchors: dict[date, dict[str, Any]] = {}
    for key in store.list(ARCHIVE_PREFIX):
        folder, _, name = key.rpartition("/")
        if name != "manifest.json" or "/history/" in key or "date=" not in folder:
            continue
        head = json.loads(store.read_bytes(key)).get("audit_head")
        if head:
            anchors[date.fromisoformat(folder.rsplit("date=", 1)[1])] = head
    return anchors


def due_archive_day(now: datetime, deadline_hour: int) -> date:
    """The newest day whose archive is due at `now` (UTC): yesterday once the nightly
    deadline has passed, the day before until then."""
    today = now.astimezone(UTC).date()
    return today - timedelta(days=1 if now.astimezone(UTC).hour >= deadline_hour else 2)
