"""Helpers shared by the batch assets: the batch's files, tables and retry policy."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    Backoff,
    Config,
    Failure,
    Jitter,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableRecord,
    TableSchema,
)

from media_assets.codec.contact_sheet import PAGE_TILES, Tile, data_uri, pages, sheet_pages
from media_assets.codec.pool import Outcome
from media_assets.codec.worker import timed_call
from media_assets.core.errors import Rejected
from media_assets.core.policy import Limits
from media_assets.operations.usage import meter_of, save_usage, summary
from media_assets.records.layout import contact_sheet_key
from media_assets.records.manifest import (
    load_manifest,
    quarantine,
    quarantine_records,
    save_step_timings,
)
from media_assets.records.retention import purged_contents

# Transient storage trouble that outlives the in-step retries fails the step; Dagster then
# retries the whole step a bounded number of times. Bad files never raise: they quarantine.
STORAGE_RETRY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL,
                            jitter=Jitter.PLUS_MINUS)


class RenderConfig(Config):
    """Launchpad config of the derivative assets: `force: true` re-renders every file of the
    selected batches ("all"), not only the missing or stale ones (the default)."""

    force: bool = False


def require_manifest(store: Any, batch_key: str) -> dict[str, Any]:
    manifest = load_manifest(store, batch_key)
    if manifest is None:
        raise Failure(f"batch {batch_key!r} has no manifest in the store", allow_retries=False)
    return manifest


def require_intake(store: Any, batch_key: str) -> dict[str, Any]:
    manifest = require_manifest(store, batch_key)
    if manifest.get("files") is None:
        raise Failure(f"batch {batch_key!r} has not been ingested: materialise `originals` "
                      "for it first", allow_retries=False)
    return manifest


def stored_files(manifest: dict[str, Any], kinds: Collection[str],
                 exclude: Collection[str] = frozenset()) -> dict[str, dict]:
    """Content id -> file entry for the batch's stored files of `kinds` (each content once)."""
    files: dict[str, dict] = {}
    for entry in manifest["files"]:
        cid = entry["content_id"]
        if entry["status"] == "ok" and entry["kind"] in kinds and cid not in exclude:
            files.setdefault(cid, entry)
    return files


def batch_files(store: Any, batch_key: str, kinds: Collection[str],
                log: Any = None) -> dict[str, dict]:
    """The batch's stored files of `kinds` that no step has quarantined and whose original
    retention has not purged (`log` says how many were skipped for that)."""
    manifest = require_intake(store, batch_key)
    files = stored_files(manifest, kinds, exclude=set(quarantine_records(store, batch_key)))
    purged = {cid: why for cid, why in purged_contents(store).items()
              if cid in files and not store.exists(files[cid]["original_key"])}
    skipped = [(e["source_name"], purged[cid]) for cid, e in files.items() if cid in purged]
    if skipped and log is not None:
        name, why = skipped[0]
        log.warning(f"{len(skipped)} originals were purged by retention and are skipped "
                    f"(e.g. {name}: {why})")
    return {cid: e for cid, e in files.items() if cid not in purged}


def process_files(
    context: AssetExecutionContext, store: Any, workers: Any, limits: Limits,
    entries: dict[str, dict[str, Any]], task: Callable[[str, Path], tuple[Any, ...]],
    keep: Callable[[str, Any], None], *, stage: str, timeout: float | None = None,
) -> set[str]:
    """Run `task(cid, local original)` -> (fn, *args) for each entry in the worker pool.

    `keep(cid, value)` stores each success as soon as it is known; a failure quarantines
    the file (never the batch). Per-file timings go to the batch's step results. Returns the
    content ids that failed."""
    timings: dict[str, float] = {}
    failed: set[str] = set()
    meter = meter_of(store)
    uses = {cid: meter.file(cid, e.get("kind"), e["source_name"])
            for cid, e in entries.items()} if meter else {}

    def settle(cid: str, outcome: Outcome) -> None:
        if outcome.ok:
            value, timings[cid], cpu_ms = outcome.value
            if meter:
                uses[cid].add(cpu_seconds=cpu_ms / 1000, wall_seconds=timings[cid] / 1000)
                with meter.attributing(cid):
                    keep(cid, value)
            else:
                keep(cid, value)
            log_file(context, "debug", f"{stage}_done", cid, entries[cid]["source_name"],
                     ms=timings[cid], cpu_ms=cpu_ms)
            return
        failed.add(cid)
        quarantine_failure(store, entries[cid], outcome.error, batch_key=context.partition_key,
                           stage=stage, run_id=context.run.run_id)
        log_file(context, "warning", "quarantined", cid, entries[cid]["source_name"],
                 stage=stage, error_class=type(outcome.error).__name__,
                 reason=getattr(outcome.error, "reason", "error"))

    with local_originals(store, entries) as paths:
        workers.run([(cid, timed_call, task(cid, paths[cid])) for cid in entries], limits,
                    on_outcome=settle, timeout=timeout)
    save_step_timings(store, context.partition_key, stage, timings)
    return failed


INLINE_PAGES = 4  # more would weigh down every materialisation event; the rest are linked


@dataclass(frozen=True)
class SheetTile:
    """A file as a contact sheet shows it: caption, its thumbnail's key, or why it has none."""

    caption: str
    key: str | None = None
    problem: str | None = None


def spec_json(spec: Any) -> MetadataValue:
    """A derivative spec and its hash, as UI metadata."""
    return MetadataValue.json({**spec.model_dump(), "spec_hash": spec.spec_hash})


def contact_sheet_markdown(store: Any, batch_key: str, asset_name: str,
                           tiles: list[SheetTile]) -> MetadataValue:
    """Every file of the batch on captioned contact sheets, `PAGE_TILES` a page: each page is
    kept in the store (`contact_sheet_key`), the first `INLINE_PAGES` are inline here, and
    the caption says how many files each shows of how many."""
    if not tiles:
        return MetadataValue.md("_no files of this kind in this batch_")
    with contextlib.ExitStack() as stack:  # each thumbnail as a local file while drawn
        drawn = [Tile(t.caption, stack.enter_context(store.local_path(t.key))
                      if t.key and store.exists(t.key) else None, t.problem) for t in tiles]
        rendered = sheet_pages(drawn)
    paged = pages(tiles)
    lines = [f"{len(tiles)} files on {len(paged)} pages of up to {PAGE_TILES}; quarantined "
             "files are grey tiles with their reason."]
    start = 0
    for number, (page, data) in enumerate(zip(paged, rendered, strict=True), 1):
        key = contact_sheet_key(batch_key, asset_name, number)
        store.put_bytes(key, data)
        shown = f"page {number} of {len(paged)}: files {start + 1}–{start + len(page)} of " \
                f"{len(tiles)}"
        if number <= INLINE_PAGES:
            lines.append(f"**{shown}**\n\n![{shown}]({data_uri(data)})")
        else:
            lines.append(f"{shown}: `{store.describe(key)}`")
        start += len(page)
    return MetadataValue.md("\n\n".join(lines))


def log_file(context: Any, level: str, event: str, content_id: str | None,
              source_name: str, **fields: Any) -> None:
    """One log line about one file, as logfmt (`key=value ...`): every such line carries the
    content id, the source name, the batch and the run id, so logs can be filtered by any."""
    batch = context.partition_key if context.has_partition_key else "-"
    pairs = {"event": event, "content_id": content_id or "-", "source_name": source_name,
             "batch": batch, "run_id": context.run.run_id, **fields}
    getattr(context.log, level)(" ".join(f"{k}={_logfmt(v)}" for k, v in pairs.items()))


def _logfmt(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n') else text


def record_usage(context: Any, store: Any, asset: str,
                 entries: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """Save what this step consumed as usage records and return its totals as metadata.
    `entries` are files the step served without per-file work (they share its cost)."""
    meter = meter_of(store)
    if meter is None:
        return {}
    for entry in entries:
        if entry.get("content_id"):
            meter.file(entry["content_id"], entry.get("kind"), entry["source_name"])
    now = datetime.now(UTC)
    batch = context.partition_key if context.has_partition_key else "-"
    rows = meter.rows(asset, batch, context.run.run_id, now)
    save_usage(store, rows, now)
    totals = summary(rows)
    files = sum(1 for r in rows if r["content_id"])
    return {
        "usage/cpu_seconds": totals["cpu_seconds"],
        "usage/wall_seconds": meter.step_wall_seconds(),
        "usage/worker_seconds": totals["wall_seconds"],
        "usage/cpu_seconds_per_file": round(totals["cpu_seconds"] / files, 4) if files else 0.0,
        "usage/bytes_read": totals["bytes_read"],
        "usage/bytes_written_hot": totals["bytes_written_hot"],
        "usage/bytes_written_cold": totals["bytes_written_cold"],
        "usage/store_requests": totals["requests"],
    }


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> MetadataValue:
    """A UI table; `columns` are (name, type) with types 'string', 'int', 'float', 'bool'."""
    schema = TableSchema(columns=[TableColumn(name, kind) for name, kind in columns])
    records = [TableRecord({name: row.get(name) for name, _ in columns}) for row in rows]
    return MetadataValue.table(records=records, schema=schema)


@contextlib.contextmanager
def local_originals(store: Any, entries: dict[str, dict[str, Any]]) -> Iterator[dict[str, Path]]:
    """Local paths of the originals of `entries` (a remote store downloads them first);
    each read is counted as its file's."""
    meter = meter_of(store)
    with contextlib.ExitStack() as stack:
        paths = {}
        for cid, entry in entries.items():
            with meter.attributing(cid) if meter else contextlib.nullcontext():
                paths[cid] = stack.enter_context(store.local_path(entry["original_key"]))
        yield paths


def quarantine_failure(store: Any, entry: dict[str, Any], error: Exception | None, *,
                       batch_key: str, stage: str, run_id: str) -> None:
    """Quarantine a stored original that a later step could not process."""
    reason = error.reason if isinstance(error, Rejected) else "error"
    with store.local_path(entry["original_key"]) as path:
        quarantine(store, bytes_path=path, content_id=entry["content_id"], batch_key=batch_key,
                   source_name=entry["source_name"], reason=reason, detail=str(error),
                   error_class=type(error).__name__, stage=stage, run_id=run_id)
