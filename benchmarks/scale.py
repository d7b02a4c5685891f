"""Scale run (issue 7): a 10,000-file flood under `dagster dev`, then a grown history.

One invocation:
  A. (live) generates N small distinct JPEGs (cached), runs the bare-library loop over them,
     starts `dagster dev` on temp folders (SQLite or a fresh PostgreSQL database), drops all N
     into the inbox at once and waits until the catalog holds them; reports sensor ticks,
     batches and runs, wall time, files/s, overhead per file against the bare loop, peak RSS
     per role (webserver, daemon, code server, runs) and the partitions view (GraphQL);
  B. (history) stops it, seeds M catalog rows in B batch fragments (metadata only, no media)
     and B batch partitions, compacts the index, restarts `dagster dev` and measures again:
     sensor ticks (inbox, stale derivatives, archive), run launch, partitions view, lookups
     by content id and by source name (the `lookup_file` job and in-process), stale
     derivatives;
  prints a compact report and writes JSON to benchmarks/out/scale-<timestamp>.json.

    .venv/bin/python benchmarks/scale.py                                  # SQLite, local store
    .venv/bin/python benchmarks/scale.py --instance postgres
    .venv/bin/python benchmarks/scale.py --files 300 --history-rows 30000 --history-batches 300
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest_benchmark import (
    DagsterDev,
    Instance,
    analyse_runs,
    free_port,
    measure_flood,
    run_bare,
)
from measure import (
    RoleSampler,
    cpu_busy_since,
    cpu_times,
    mib,
    rss_bytes,
    save_and_report,
    sha256_of,
)

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "benchmarks" / "out"
LOCATION, REPOSITORY = "media_assets", "__repository__"
PARTITIONS = "batches"

# ---------------------------------------------------------------------------------------------
# Test files: small distinct JPEGs


def _write_small(task: tuple[str, int, int, int]) -> int:
    """One 4:2:0 JPEG of `synth_photo` content (its own seed): temp name, then rename."""
    from media_assets.samples import synth_photo

    path_str, seed, width, height = task
    path = Path(path_str)
    tmp = path.with_name(f".{path.name}.tmp")
    synth_photo((width, height), seed).save(tmp, "JPEG", quality=85)
    tmp.replace(path)
    return path.stat().st_size


def ensure_small_files(files_dir: Path, prefix: str, count: int, first_seed: int,
                       size: tuple[int, int]) -> list[Path]:
    """`count` cached JPEGs named `<prefix>-NNNNN.jpg`, generated (2 processes) if missing."""
    files_dir.mkdir(parents=True, exist_ok=True)
    paths = [files_dir / f"{prefix}-{i:05d}.jpg" for i in range(count)]
    tasks = [(str(p), first_seed + i, *size) for i, p in enumerate(paths) if not p.is_file()]
    if tasks:
        print(f"generating {len(tasks)} {size[0]}x{size[1]} JPEGs into {files_dir} ...",
              flush=True)
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            for done, _ in enumerate(pool.imap_unordered(_write_small, tasks, chunksize=32), 1):
                if done % 2000 == 0:
                    print(f"  {done}/{len(tasks)}", flush=True)
    return paths


# ---------------------------------------------------------------------------------------------
# GraphQL: ticks, runs, the partitions view, launching a job


class GraphQL:
    """POSTs queries to the webserver's /graphql; each call returns (data, seconds)."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"

    def __call__(self, query: str, variables: dict[str, Any] | None = None,
                 timeout: float = 900) -> tuple[dict[str, Any], float]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, data=body,
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        elapsed = time.perf_counter() - started
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {json.dumps(payload['errors'])[:800]}")
        return payload["data"], elapsed


TICKS_QUERY = """
query SensorTicks($selector: SensorSelector!, $after: Float, $limit: Int) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor {
      sensorState {
        ticks(afterTimestamp: $after, limit: $limit) {
          tickId status timestamp endTimestamp runIds skipReason error { message }
        }
      }
    }
    ... on PythonError { message }
  }
}"""

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime } }
    ... on PythonError { message }
  }
}"""

# What the UI's asset Partitions tab asks for (dagster-webserver's bundled PartitionHealthQuery).
PARTITION_HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses {
          ranges { status startTime endTime startKey endKey }
        }
        ... on DefaultPartitionStatuses {
          materializedPartitions materializingPartitions failedPartitions
        }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
            secondaryDim {
              ... on TimePartitionStatuses {
                ranges { status startTime endTime startKey endKey }
              }
              ... on DefaultPartitionStatuses {
                materializedPartitions materializingPartitions failedPartitions
              }
            }
          }
        }
      }
    }
  }
}"""

PARTITION_STATS_QUERY = """
query PartitionStats($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    }
  }
}"""

LAUNCH_QUERY = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""


def sensor_ticks(gql: GraphQL, sensor: str, after: float, limit: int = 5000) -> list[dict]:
    """The sensor's ticks that started after `after`, oldest first."""
    data, _ = gql(TICKS_QUERY, {"selector": {"repositoryLocationName": LOCATION,
                                             "repositoryName": REPOSITORY,
                                             "sensorName": sensor},
                                "after": after, "limit": limit})
    found = data["sensorOrError"]
    if found["__typename"] != "Sensor":
        raise RuntimeError(f"sensor {sensor}: {found}")
    return sorted(found["sensorState"]["ticks"], key=lambda t: t["timestamp"])


def runs_by_id(gql: GraphQL, run_ids: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for start in range(0, len(run_ids), 500):
        data, _ = gql(RUNS_QUERY, {"filter": {"runIds": run_ids[start:start + 500]}})
        found.update({r["runId"]: r for r in data["runsOrError"].get("results", [])})
    return found


def runs_since(gql: GraphQL, after: float) -> dict[str, dict[str, int]]:
    """Job -> status -> runs created after `after` (what else the instance launched)."""
    data, _ = gql(RUNS_QUERY, {"filter": {"createdAfter": after}})
    found: dict[str, Counter[str]] = {}
    for run in data["runsOrError"].get("results", []):
        found.setdefault(run["jobName"], Counter())[run["status"]] += 1
    return {job: dict(statuses) for job, statuses in sorted(found.items())}


def _pct(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of `values`, rounded."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 3)


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"min": round(min(values), 3) if values else None, "median": _pct(values, 0.5),
            "max": round(max(values), 3) if values else None}


def tick_summary(ticks: list[dict]) -> dict[str, Any]:
    """Durations of finished ticks (end - start), the runs they requested."""
    durations = [t["endTimestamp"] - t["timestamp"] for t in ticks if t.get("endTimestamp")]
    with_runs = [t for t in ticks if t["runIds"]]
    return {
        "ticks": len(ticks), "finished": len(durations),
        "statuses": dict(Counter(t["status"] for t in ticks)),
        "max_s": round(max(durations), 3) if durations else None,
        "p95_s": _pct(durations, 0.95),
        "median_s": round(statistics.median(durations), 3) if durations else None,
        "ticks_with_runs": len(with_runs),
        "runs_requested": sum(len(t["runIds"]) for t in ticks),
        "with_runs_s": [round(t["endTimestamp"] - t["timestamp"], 3) for t in with_runs
                        if t.get("endTimestamp")][:50],
        "errors": [t["error"]["message"][:300] for t in ticks if t.get("error")][:3],
    }


def launch_latency(gql: GraphQL, ticks: list[dict]) -> dict[str, Any]:
    """For each run a tick requested: tick start -> run created -> run started (STARTED)."""
    tick_of = {run_id: t for t in ticks for run_id in t["runIds"]}
    runs = runs_by_id(gql, list(tick_of))
    tick_to_start, created_to_start, statuses = [], [], Counter()
    for run_id, run in runs.items():
        statuses[run["status"]] += 1
        if run.get("startTime"):
            tick_to_start.append(run["startTime"] - tick_of[run_id]["timestamp"])
            created_to_start.append(run["startTime"] - run["creationTime"])
    return {"runs": len(runs), "statuses": dict(statuses),
            "tick_to_started_s": _spread(tick_to_start),
            "created_to_started_s": _spread(created_to_start)}


def partitions_view(gql: GraphQL, assets: list[str], repeats: int) -> dict[str, Any]:
    """Time the UI's partitions query per asset (first call and the median of `repeats`)."""
    result = {}
    for name in assets:
        variables = {"assetKey": {"path": [name]}}
        times, node = [], {}
        for _ in range(max(1, repeats)):
            data, seconds = gql(PARTITION_HEALTH_QUERY, variables)
            times.append(seconds)
            node = data["assetNodeOrError"] or {}
        stats, stats_s = gql(PARTITION_STATS_QUERY, variables)
        dims = node.get("partitionKeysByDimension") or [{}]
        statuses = node.get("assetPartitionStatuses") or {}
        result[name] = {
            "first_s": round(times[0], 3), "median_s": round(statistics.median(times), 3),
            "partition_keys": len(dims[0].get("partitionKeys") or []),
            "materialized": len(statuses.get("materializedPartitions") or []),
            "failed": len(statuses.get("failedPartitions") or []),
            "partition_stats": (stats["assetNodeOrError"] or {}).get("partitionStats"),
            "partition_stats_s": round(stats_s, 3),
        }
    return result


def launch_and_wait(gql: GraphQL, job: str, run_config: dict, timeout: float) -> dict[str, Any]:
    """Launch a job through GraphQL and wait for its end: wall, queue and run seconds."""
    started = time.time()
    data, _ = gql(LAUNCH_QUERY, {"params": {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                     "jobName": job},
        "runConfigData": run_config}})
    launched = data["launchRun"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launching {job}: {launched}")
    run_id = launched["run"]["runId"]
    while time.time() - started < timeout:
        run = runs_by_id(gql, [run_id]).get(run_id, {})
        if run.get("status") in ("SUCCESS", "FAILURE", "CANCELED"):
            return {"run_id": run_id, "status": run["status"],
                    "wall_s": round(time.time() - started, 2),
                    "created_to_started_s": round(run["startTime"] - run["creationTime"], 2)
                    if run.get("startTime") else None,
                    "run_s": round(run["endTime"] - run["startTime"], 2)
                    if run.get("startTime") and run.get("endTime") else None}
        time.sleep(0.5)
    return {"run_id": run_id, "status": "TIMEOUT", "wall_s": round(time.time() - started, 2)}


def wait_for_tick(gql: GraphQL, sensor: str, after: float, timeout: float) -> dict | None:
    """The first finished tick of `sensor` that started after `after` (None on timeout)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = [t for t in sensor_ticks(gql, sensor, after, 20) if t.get("endTimestamp")]
        if done:
            return done[0]
        time.sleep(1)
    return None


# ---------------------------------------------------------------------------------------------
# The store, through the code's own resource (local folders today; S3 once it is supported)


def open_store(root: str) -> Any:
    from media_assets.defs.resources import MediaStorage

    return MediaStorage.from_environment(root).store()  # S3 settings from the environment


class CatalogWatch:
    """What `measure_flood` polls, through the store API: catalog rows (new fragments read
    once), thumbnails (positives cached), quarantine records (read once)."""

    def __init__(self, store: Any, thumbnail_key: Callable[[str], str]) -> None:
        self.store, self.thumbnail_key = store, thumbnail_key
        self._fragments: dict[str, set[str]] = {}
        self._thumbs: set[str] = set()
        self._quarantined: dict[str, str] = {}

    def has_thumbnail(self, cid: str) -> bool:
        if cid not in self._thumbs and self.store.exists(self.thumbnail_key(cid)):
            self._thumbs.add(cid)
        return cid in self._thumbs

    def quarantined(self) -> dict[str, str]:
        for key in self.store.list("quarantine/records/"):
            cid = key.rsplit("/", 1)[-1].split(".")[0]
            if key.endswith(".json") and cid not in self._quarantined:
                try:
                    self._quarantined[cid] = json.loads(self.store.read_bytes(key))["reason"]
                except (OSError, ValueError, KeyError):
                    continue
        return dict(self._quarantined)

    def catalogued(self) -> set[str]:
        import polars as pl

        from media_assets.records.catalog import latest_fragments
        from media_assets.records.layout import CATALOG_FRAGMENTS_PREFIX

        ids: set[str] = set()
        for key in latest_fragments(self.store.list(CATALOG_FRAGMENTS_PREFIX)).values():
            if key not in self._fragments:
                try:
                    with self.store.local_path(key) as path:
                        frame = pl.read_parquet(path, columns=["content_id"])
                except (OSError, pl.exceptions.PolarsError):
                    continue  # replaced between listing and reading: next poll
                self._fragments[key] = set(frame["content_id"].to_list())
            ids |= self._fragments[key]
        return ids


# ---------------------------------------------------------------------------------------------
# Part A: the flood


def drop_atomically(files: list[Path], inbox: Path, prefix: str) -> float:
    """Copy into a hidden folder of the inbox, then rename all at once: returns the drop time."""
    hidden = inbox / f".{prefix}-drop"
    hidden.mkdir()
    names = []
    for number, source in enumerate(files):
        names.append(f"{prefix}-{number:05d}-{source.name}")
        shutil.copyfile(source, hidden / names[-1])
    dropped = time.time()
    for name in names:
        os.utime(hidden / name)
        (hidden / name).replace(inbox / name)
    hidden.rmdir()
    return dropped


def wait_catalogued(watch: CatalogWatch, expected: set[str], timeout: float) -> float:
    """Seconds until every content id in `expected` has a catalog row or a quarantine record."""
    started = time.time()
    while True:
        done = (watch.catalogued() | set(watch.quarantined())) & expected
        if len(done) == len(expected):
            return time.time() - started
        if time.time() - started > timeout:
            raise TimeoutError(f"{len(done)}/{len(expected)} files catalogued after "
                               f"{timeout:.0f} s")
        time.sleep(0.5)


class Live:
    """`dagster dev` on the run's folders, with its GraphQL endpoint and a role sampler."""

    def __init__(self, run_dir: Path, env: dict[str, str], label: str) -> None:
        self.dev = DagsterDev(run_dir, env, free_port())
        self.dev.log_path = run_dir / f"dagster-dev-{label}.log"
        self.gql = GraphQL(self.dev.port)
        self.sampler: RoleSampler | None = None

    def start(self, timeout: float) -> float:
        print(f"starting dagster dev on port {self.dev.port} (log: {self.dev.log_path}) ...",
              flush=True)
        self.dev.start()
        startup = self.dev.wait_ready(timeout)
        self.sampler = RoleSampler(self.dev.proc.pid)
        self.sampler.start()
        return round(startup, 1)

    def stop(self) -> dict[str, Any]:
        peaks = {}
        if self.sampler is not None:
            self.sampler.stop()
            peaks = self.sampler.peaks()
        print("stopping dagster dev ...", flush=True)
        self.dev.stop()
        return peaks


def run_live(args: argparse.Namespace, ctx: dict[str, Any], flood: list[Path],
             extra: list[Path], shas: dict[Path, str]) -> dict[str, Any]:
    from media_assets.core.policy import load_policy
    from media_assets.records.catalog import read_arrivals
    from media_assets.records.layout import spec_output_key

    thumbnail = load_policy(ctx["policy"]).derivative("thumbnail")
    store = open_store(ctx["store_root"])
    watch = CatalogWatch(store, lambda cid: spec_output_key(thumbnail, cid))
    live = Live(ctx["run_dir"], ctx["env"], "live")
    result: dict[str, Any] = {}
    try:
        started_at = time.time()
        result["startup_s"] = live.start(args.start_timeout)
        first = wait_for_tick(live.gql, "inbox_sensor", started_at - 60, args.start_timeout)
        result["idle_before"] = live.sampler.snapshot()
        if first is None:
            raise TimeoutError("no inbox_sensor tick after the start")
        for number, source in enumerate(extra[:args.warmup]):
            print("warm-up drop (not counted) ...", flush=True)
            drop_atomically([source], ctx["inbox"], f"warmup{number}")
            wait_catalogued(watch, {shas[source]}, args.start_timeout)
        print(f"flood of {len(flood)} files ...", flush=True)
        cpu_start = cpu_times()
        flood_result = measure_flood(flood, shas, ctx["inbox"], watch,
                                     args.flood_timeout or 600 + 0.5 * len(flood))
        flood_result["cpu_busy"] = cpu_busy_since(cpu_start)
        result["flood"] = flood_result
        dropped = flood_result["dropped_at"]
        read_started = time.perf_counter()
        arrivals = read_arrivals(store)
        expected = {shas[p] for p in flood}
        result["catalog_rows_for_flood"] = int(arrivals.filter(
            arrivals["content_id"].is_in(list(expected))).height)
        result["catalog_rows_total"] = arrivals.height
        result["read_arrivals_s"] = round(time.perf_counter() - read_started, 3)
        time.sleep(args.settle_after)
        result["idle_after"] = live.sampler.snapshot()
        ticks = sensor_ticks(live.gql, "inbox_sensor", dropped - 1)
        result["inbox_sensor"] = tick_summary(ticks)
        result["run_launch"] = launch_latency(live.gql, ticks)
        result["other_sensors"] = {
            name: tick_summary(sensor_ticks(live.gql, name, started_at - 60))
            for name in ("stale_derivatives_sensor", "archive_changed_days")}
        print("partitions view ...", flush=True)
        result["partitions_view"] = partitions_view(live.gql, args.view_assets, args.view_repeats)
        result["batches"] = max((v["partition_keys"] for v in result["partitions_view"].values()),
                                default=None)
        result["runs_by_job"] = runs_since(live.gql, started_at - 60)
    finally:
        result["memory"] = live.stop()
    try:
        result["runs"] = analyse_runs(ctx["home"], Path(ctx["store_root"]),
                                      result.get("flood", {}).get("dropped_at"))["summary"]
    except Exception as exc:  # noqa: BLE001 - the analysis is a bonus
        result["runs"] = {"error": f"{type(exc).__name__}: {exc}"}
    return result


# ---------------------------------------------------------------------------------------------
# Part B: history seeded in bulk (metadata only), measured again


FOLDERS = ("", "agency", "agency/press", "events/2025", "studio", "archive/scans", "scratch")
REASONS = ("truncated", "corrupt", "empty", "unsupported_type")


def _template_row(store: Any) -> dict[str, Any] | None:
    """A real image row of the live part, to give seeded rows realistic metadata."""
    from media_assets.records.catalog import read_arrivals

    arrivals = read_arrivals(store)
    ok = arrivals.filter((arrivals["status"] == "ok") & (arrivals["media_kind"] == "image"))
    return ok.row(0, named=True) if ok.height else None


def synthetic_rows(rng: random.Random, batch: str, at: datetime, count: int, counter: int,
                   policy: Any, template: dict[str, Any] | None) -> list[dict[str, Any]]:
    """`count` arrival rows of one batch: random content ids, names in folders, mostly
    images (some video and audio), ~2 % quarantined, derivatives under the current specs."""
    from media_assets.records.layout import original_key, spec_output_key

    base = dict(template or {})
    for drop in ("tier", "purged_at", "schema_version"):
        base.pop(drop, None)
    rows = []
    for n in range(count):
        cid = rng.getrandbits(256).to_bytes(32, "big").hex()
        kind = rng.choices(("image", "video", "audio"), (90, 6, 4))[0]
        ext = {"image": "jpg", "video": "mp4", "audio": "m4a"}[kind]
        folder = rng.choice(FOLDERS)
        name = f"{folder}/" if folder else ""
        name += f"{'IMG' if kind == 'image' else 'REC'}_{counter + n:07d}.{ext}"
        quarantined = rng.random() < 0.02
        width, height = (0, 0) if kind == "audio" else rng.choice(
            [(4000, 3000), (3000, 4000), (1920, 1080), (320, 240)])
        derivatives = [] if quarantined else [
            {"name": spec.name, "key": spec_output_key(spec, cid), "spec_hash": spec.spec_hash,
             "width": min(width, 1440) or None, "height": min(height, 1440) or None,
             "bytes": rng.randint(5_000, 400_000)} for spec in policy.wanted(kind)]
        rows.append({
            **base,
            "content_id": cid, "source_name": name, "batch_key": batch,
            "lane": "av" if kind != "image" else "image", "arrived_at": at, "cataloged_at": at,
            "status": "quarantined" if quarantined else "ok", "duplicate": rng.random() < 0.01,
            "reason": rng.choice(REASONS) if quarantined else None,
            "detail": "seeded" if quarantined else None,
            "media_kind": kind, "media_type": {"image": "image/jpeg", "video": "video/mp4",
                                               "audio": "audio/mp4"}[kind],
            "bytes": rng.randint(50_000, 8_000_000),
            "width": width or None, "height": height or None,
            "duration_seconds": rng.uniform(5, 600) if kind != "image" else None,
            "video_codec": "h264" if kind == "video" else None,
            "audio_codec": "aac" if kind != "image" else None,
            "live_photo_id": None, "name_stem": name.rsplit(".", 1)[0],
            "original_key": None if quarantined else original_key(cid, ext),
            "quarantine_key": f"quarantine/blobs/{cid[:2]}/{cid[2:4]}/{cid}" if quarantined
            else None,
            "metadata_json": base.get("metadata_json") if kind == "image" else json.dumps(
                {"container": ext, "duration": 12.5, "streams": [{"codec": "aac"}]}),
            "derivatives": derivatives,
            "run_id": base.get("run_id") or str(uuid.uuid4()),
        })
    return rows


def _put(store: Any, key: str, data: bytes) -> None:
    """Seeding writes: straight to disk for a local store (one sync at the end), else the
    store's own atomic write."""
    from media_assets.storage import LocalObjectStore

    inner = getattr(store, "inner", store)
    if isinstance(inner, LocalObjectStore):
        path = inner.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        store.put_bytes(key, data)


def seed_history(args: argparse.Namespace, ctx: dict[str, Any], instance: Any) -> dict[str, Any]:
    """M rows in B batches over past days (fragments + manifests), B partitions, and
    runless `catalog` materialisations (optional): what a long-lived deployment holds."""
    from dagster import AssetMaterialization

    from media_assets.core.policy import load_policy
    from media_assets.operations.batching import batch_key
    from media_assets.records.catalog import fragment_bytes, fragment_key

    store, policy = open_store(ctx["store_root"]), load_policy(ctx["policy"])
    rng = random.Random(args.seed)
    template = _template_row(store)
    batches, per_day = args.history_batches, args.history_batches_per_day
    days = math.ceil(batches / per_day)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows_per_batch = [args.history_rows // batches + (i < args.history_rows % batches)
                      for i in range(batches)]
    keys: list[str] = []
    samples: list[dict[str, str]] = []
    started = time.perf_counter()
    counter = 0
    for i in range(batches):
        day, slot = divmod(i, per_day)
        at = today - timedelta(days=days - day) + timedelta(seconds=slot * 86400 // per_day + 7)
        key = batch_key(at, slot + 1)
        rows = synthetic_rows(rng, key, at, rows_per_batch[i], counter, policy, template)
        counter += len(rows)
        run_id = str(uuid.UUID(int=rng.getrandbits(128)))
        _put(store, fragment_key(key, at + timedelta(seconds=30), run_id), fragment_bytes(rows))
        manifest = {"batch_key": key, "lane": "image", "created_at": at.isoformat(),
                    "closed_because": "full", "work": "upload",
                    "sources": [{"inbox": r["source_name"], "size": r["bytes"]} for r in rows],
                    "files": [{"source_name": r["source_name"], "content_id": r["content_id"],
                               "status": r["status"]} for r in rows],
                    "intake_run_id": run_id}
        _put(store, f"batches/{key}.json", json.dumps(manifest).encode())
        keys.append(key)
        if i in (batches // 3, batches // 2) and rows:
            ok = next((r for r in rows if r["status"] == "ok"), rows[0])
            samples.append({"content_id": ok["content_id"], "source_name": ok["source_name"]})
        if (i + 1) % 1000 == 0:
            print(f"  seeded {i + 1}/{batches} batches ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    os.sync()
    result: dict[str, Any] = {"rows": counter, "batches": batches, "days": days,
                              "store_seconds": round(time.perf_counter() - started, 1),
                              "samples": samples}
    started = time.perf_counter()
    for start in range(0, len(keys), 1000):
        instance.add_dynamic_partitions(PARTITIONS, keys[start:start + 1000])
    result["add_partitions_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    for asset in args.seed_materializations:
        for key, count in zip(keys, rows_per_batch, strict=True):
            instance.report_runless_asset_event(AssetMaterialization(
                asset_key=asset, partition=key, metadata={"dagster/row_count": count}))
    result["materializations_seconds"] = round(time.perf_counter() - started, 1)
    result["partitions_in_instance"] = len(instance.get_dynamic_partitions(PARTITIONS))
    return result


def mark_days_archived(ctx: dict[str, Any], instance: Any) -> str:
    """Steady state: the seeded past days count as archived. Without this the first
    archive_changed_days tick would queue one archive run per seeded day."""
    from dagster import build_sensor_context
    from dagster._core.definitions.run_request import InstigatorType

    from media_assets.defs.archive import archive_changed_days
    from media_assets.defs.resources import MediaStorage

    with build_sensor_context(
            resources={"storage": MediaStorage.from_environment(ctx["store_root"])}) as context:
        evaluated = archive_changed_days(context)
    cursor = getattr(evaluated, "cursor", None)
    if not cursor:
        return "no past day to mark"
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == "archive_changed_days":
            instance.update_instigator_state(
                state.with_data(state.instigator_data._replace(cursor=cursor)))
            return f"{len(json.loads(cursor))} days marked archived"
    return "archive_changed_days has no state in the instance: not marked"


def catalog_probe(task: str, store_root: str, policy_path: str, query: str) -> dict[str, Any]:
    """One in-process catalog operation in a fresh process: seconds and peak RSS (sampled
    every 20 ms during the operation)."""
    warnings.filterwarnings("ignore", module="dagster")
    import polars as pl

    from media_assets.core.policy import load_policy
    from media_assets.records.catalog import (
        compact,
        lookup,
        read_arrivals,
        read_catalog,
        read_index_manifest,
        stale_derivatives,
    )

    store = open_store(store_root)
    policy = load_policy(policy_path)
    before = rss_bytes(os.getpid())
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_bytes(os.getpid()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    found: Any = None
    if task == "compact":
        found = compact(store, datetime.now(UTC))["rows"]
    elif task == "read_catalog":
        found = read_catalog(store).height
    elif task == "read_arrivals":
        found = read_arrivals(store).height
    elif task == "lookup":
        found = lookup(read_catalog(store), query).height
    elif task == "stale_derivatives":
        found = stale_derivatives(read_catalog(store), policy).height
    elif task in ("index_lookup_id", "index_lookup_name"):
        manifest = read_index_manifest(store)
        with store.local_path(manifest["index_key"]) as path:
            frame = pl.scan_parquet(path)
            if task == "index_lookup_id":
                frame = frame.filter(pl.col("content_id") == query)
            else:
                frame = frame.filter((pl.col("source_name") == query)
                                     | pl.col("source_name").str.ends_with(f"/{query}"))
            found = frame.collect().height
    else:
        raise ValueError(task)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return {"seconds": round(seconds, 3), "result": found, "rss_before_mib": mib(before),
            "peak_rss_mib": mib(max(peak[0], rss_bytes(os.getpid())))}


def probe(task: str, ctx: dict[str, Any], query: str = "") -> dict[str, Any]:
    with concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(catalog_probe, task, ctx["store_root"], str(ctx["policy"]),
                               query).result()
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            return {"error": f"{type(exc).__name__}: {exc}"}


def run_history(args: argparse.Namespace, ctx: dict[str, Any], probe_files: list[Path],
                shas: dict[Path, str]) -> dict[str, Any]:
    from media_assets.core.policy import load_policy
    from media_assets.records.layout import spec_output_key

    result: dict[str, Any] = {}
    print(f"seeding {args.history_rows} rows in {args.history_batches} batches ...", flush=True)
    with ctx["instance"].open() as instance:
        result["seed"] = seed_history(args, ctx, instance)
        print("compacting the index ...", flush=True)
        result["compact"] = probe("compact", ctx)
        result["archive_cursor"] = mark_days_archived(ctx, instance)
    samples = result["seed"]["samples"]

    thumbnail = load_policy(ctx["policy"]).derivative("thumbnail")
    store = open_store(ctx["store_root"])
    watch = CatalogWatch(store, lambda cid: spec_output_key(thumbnail, cid))
    watch.catalogued()  # read what is there before the drop
    live = Live(ctx["run_dir"], ctx["env"], "history")
    try:
        started_at = time.time()
        result["startup_s"] = live.start(args.start_timeout)
        idle_tick = wait_for_tick(live.gql, "inbox_sensor", started_at, args.start_timeout)
        result["idle_tick_s"] = round(idle_tick["endTimestamp"] - idle_tick["timestamp"], 3) \
            if idle_tick else None
        result["idle"] = live.sampler.snapshot()
        print(f"drop of {len(probe_files)} files ...", flush=True)
        dropped = drop_atomically(probe_files, ctx["inbox"], "history")
        result["drop_to_catalogued_s"] = round(wait_catalogued(
            watch, {shas[p] for p in probe_files}, args.start_timeout * 2), 2)
        ticks = sensor_ticks(live.gql, "inbox_sensor", dropped - 1)
        result["inbox_sensor"] = tick_summary(ticks)
        result["run_launch"] = launch_latency(live.gql, ticks)
        print("waiting for a stale_derivatives_sensor tick ...", flush=True)
        stale = wait_for_tick(live.gql, "stale_derivatives_sensor", started_at - 1,
                              args.sensor_wait)
        result["other_sensors"] = {
            name: tick_summary(sensor_ticks(live.gql, name, started_at - 1))
            for name in ("stale_derivatives_sensor", "archive_changed_days")}
        if stale is None:
            result["other_sensors"]["stale_derivatives_sensor"]["note"] = (
                f"no finished tick within {args.sensor_wait:.0f} s")
        print("partitions view ...", flush=True)
        result["partitions_view"] = partitions_view(live.gql, args.view_assets, args.view_repeats)
        print("lookup_file runs ...", flush=True)
        result["lookup_file_job"] = {
            by: launch_and_wait(live.gql, "lookup_file",
                                {"ops": {"find_file": {"config": {"query": samples[0][by]}}}},
                                args.start_timeout * 2)
            for by in ("content_id", "source_name")} if samples else {}
        result["idle_after"] = live.sampler.snapshot()
        result["runs_since_restart"] = runs_since(live.gql, started_at)
    finally:
        result["memory"] = live.stop()
    print("in-process catalog reads ...", flush=True)
    if samples:
        sample = samples[-1]
        result["in_process"] = {
            "read_catalog": probe("read_catalog", ctx),
            "lookup_by_content_id": probe("lookup", ctx, sample["content_id"]),
            "lookup_by_source_name": probe("lookup", ctx, sample["source_name"]),
            "index_lookup_by_content_id": probe("index_lookup_id", ctx, sample["content_id"]),
            "index_lookup_by_source_name": probe("index_lookup_name", ctx,
                                                 sample["source_name"]),
            "stale_derivatives": probe("stale_derivatives", ctx),
        }
    return result


# ---------------------------------------------------------------------------------------------
# Report


def _fmt_ticks(label: str, ticks: dict[str, Any]) -> str:
    return (f"  {label}: {ticks['ticks']} ticks, max {ticks['max_s']} s, p95 {ticks['p95_s']} s, "
            f"median {ticks['median_s']} s; {ticks['ticks_with_runs']} with runs "
            f"({ticks['runs_requested']} runs)" + (f"; errors: {ticks['errors']}"
                                                    if ticks["errors"] else ""))


def _fmt_memory(memory: dict[str, Any]) -> str:
    roles = ", ".join(f"{r} {v}" for r, v in memory.get("rss_mib_by_role", {}).items())
    return (f"  peak RSS MiB: {roles}; largest run {memory.get('rss_mib_largest_run')}; total "
            f"{memory.get('rss_mib_total')} (PSS {memory.get('pss_mib_total')}), "
            f"{memory.get('max_processes')} processes, "
            f"{memory.get('max_concurrent_runs')} runs at once")


def _fmt_view(view: dict[str, Any]) -> list[str]:
    return [f"  partitions view {name}: {v['first_s']} s first, {v['median_s']} s median; "
            f"{v['partition_keys']} partitions, {v['materialized']} materialized "
            f"(partitionStats {v['partition_stats_s']} s)" for name, v in view.items()]


def _fmt_probe(label: str, found: dict[str, Any]) -> str:
    if "error" in found:
        return f"  {label}: FAILED {found['error']}"
    return (f"  {label}: {found['seconds']} s (result {found['result']}, peak RSS "
            f"{found['peak_rss_mib']} MiB from {found['rss_before_mib']})")


def report(data: dict[str, Any]) -> str:
    lines = [f"scale run: {data['files']} files, instance {data['instance']}, store "
             f"{data['store']}, {data['cpus']} CPUs, {data['started_at']}"]
    bare, live = data.get("bare"), data.get("pipeline", {})
    if bare:
        lines.append(f"  bare loop: {bare['files_per_second']} files/s ({bare['wall_seconds']} s)")
    flood = live.get("flood")
    if flood:
        lines.append(f"  flood: all {data['files']} catalogued after {flood['wall_seconds']} s "
                     f"= {flood['files_per_second']} files/s (CPU busy {flood['cpu_busy']:.0%}); "
                     f"catalog rows {live.get('catalog_rows_for_flood')}, quarantined "
                     f"{flood['quarantined']}, left in inbox {flood['left_in_inbox']}")
        if "overhead_ms_per_file" in data:
            lines.append(f"  orchestration overhead {data['overhead_ms_per_file']} ms/file "
                         f"(ratio pipeline/bare {data['ratio']})")
    if "inbox_sensor" in live:
        lines.append(_fmt_ticks("inbox_sensor (flood)", live["inbox_sensor"]))
        launch = live["run_launch"]
        lines.append(f"  batches {live['batches']} (with the warm-up's); runs launched by the "
                     f"flood's ticks {launch['runs']} {launch['statuses']}, all runs "
                     f"{live['runs_by_job']}")
        lines.append(f"  run launch: tick -> started {launch['tick_to_started_s']} s, "
                     f"created -> started {launch['created_to_started_s']} s")
        runs = live.get("runs", {})
        if "median_total_s" in runs:
            lines.append(f"  per run (median): queued {runs['median_queued_s']} s, launch -> "
                         f"start {runs['median_launch_to_start_s']} s, total "
                         f"{runs['median_total_s']} s; failed {runs['failed']}")
        for name, ticks in live["other_sensors"].items():
            lines.append(_fmt_ticks(name, ticks))
        lines.extend(_fmt_view(live["partitions_view"]))
    if live.get("memory"):
        lines.append(_fmt_memory(live["memory"]))
    if "error" in live:
        lines.append(f"  LIVE PART FAILED: {live['error']}")
    hist = data.get("history", {})
    if hist.get("seed"):
        seed = hist["seed"]
        lines.append(f"history: {seed['rows']} rows in {seed['batches']} batches over "
                     f"{seed['days']} days (store {seed['store_seconds']} s, partitions "
                     f"{seed['add_partitions_seconds']} s, materializations "
                     f"{seed['materializations_seconds']} s); {hist.get('archive_cursor')}")
        lines.append(_fmt_probe("compact", hist["compact"]))
    if "inbox_sensor" in hist:
        lines.append(f"  restart: webserver up after {hist['startup_s']} s; idle inbox tick "
                     f"{hist['idle_tick_s']} s; drop -> catalogued "
                     f"{hist['drop_to_catalogued_s']} s")
        lines.append(_fmt_ticks("inbox_sensor (drop)", hist["inbox_sensor"]))
        lines.append(f"  run launch: tick -> started {hist['run_launch']['tick_to_started_s']} s, "
                     f"created -> started {hist['run_launch']['created_to_started_s']} s")
        for name, ticks in hist["other_sensors"].items():
            lines.append(_fmt_ticks(name, ticks))
        lines.extend(_fmt_view(hist["partitions_view"]))
        lines.append(f"  runs since the restart: {hist.get('runs_since_restart')}")
        for by, run in hist.get("lookup_file_job", {}).items():
            lines.append(f"  lookup_file by {by}: {run['status']} after {run['wall_s']} s "
                         f"(run {run.get('run_s')} s)")
    if hist.get("memory"):
        lines.append(_fmt_memory(hist["memory"]))
    for label, found in hist.get("in_process", {}).items():
        lines.append(_fmt_probe(label, found))
    if "error" in hist:
        lines.append(f"  HISTORY PART FAILED: {hist['error']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="files in the flood")
    parser.add_argument("--size", default="320x240", help="image size, WxH")
    parser.add_argument("--instance", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-server", default=os.environ.get(
        "MEDIA_ASSETS_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server URL; a fresh database is created (and dropped) per run")
    parser.add_argument("--store", choices=("local", "s3"), default="local")
    parser.add_argument("--store-root", default="", help="s3://bucket/prefix for --store s3 "
                        "(default: SeaweedFS started on loopback for the run)")
    parser.add_argument("--history-rows", type=int, default=1_000_000)
    parser.add_argument("--history-batches", type=int, default=10_000)
    parser.add_argument("--history-batches-per-day", type=int, default=40)
    parser.add_argument("--history-drop", type=int, default=10,
                        help="files dropped after the history is seeded")
    parser.add_argument("--seed-materializations", default="catalog",
                        type=lambda s: [a for a in s.split(",") if a],
                        help="assets given a runless materialisation per seeded batch "
                             "(comma-separated; '' for none)")
    parser.add_argument("--view-assets", default="originals,thumbnails,catalog",
                        type=lambda s: [a for a in s.split(",") if a])
    parser.add_argument("--view-repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "media_assets_scale")
    parser.add_argument("--policy", type=Path, default=REPO / "policy.yaml")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--flood-timeout", type=float, default=0.0,
                        help="seconds; 0 = 600 + 0.5 per file")
    parser.add_argument("--sensor-wait", type=float, default=300.0,
                        help="seconds to wait for a stale_derivatives_sensor tick (B)")
    parser.add_argument("--settle-after", type=float, default=10.0)
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--skip-history", action="store_true")
    parser.add_argument("--keep", action="store_true",
                        help="keep the store, inbox, DAGSTER_HOME and PostgreSQL database")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", module="dagster")  # beta/preview notes of the code
    if args.files < 1 or args.history_batches < 1:
        raise SystemExit("--files and --history-batches must be at least 1")
    if args.store == "s3" and args.store_root and not args.store_root.startswith("s3://"):
        raise SystemExit("--store-root must be s3://bucket/prefix")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # see ingest_benchmark
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    workdir = args.workdir.resolve()
    width, height = (int(v) for v in args.size.lower().split("x"))
    files_dir = workdir / f"files-{width}x{height}"
    flood = ensure_small_files(files_dir, "img", args.files, 5_000_000, (width, height))
    extra = ensure_small_files(files_dir, "extra", args.warmup + args.history_drop, 9_000_000,
                               (width, height))
    print("hashing inputs ...", flush=True)
    shas = {p: sha256_of(p) for p in flood + extra}
    if len(set(shas.values())) != len(shas):
        raise SystemExit("some generated files are byte-identical")
    run_dir = workdir / f"run-{stamp}"
    run_dir.mkdir(parents=True)
    data: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"), "files": args.files,
        "size": args.size, "input_mib": mib(sum(p.stat().st_size for p in flood)),
        "instance": args.instance, "store": args.store, "cpus": os.cpu_count(),
        "history_rows": args.history_rows, "history_batches": args.history_batches,
        "workdir": str(workdir), "run_dir": str(run_dir),
    }
    inbox = run_dir / "inbox"
    inbox.mkdir()
    seaweed = None
    store_root = args.store_root if args.store == "s3" else str(run_dir / "store")
    if args.store == "s3" and not store_root:  # no server given: SeaweedFS on loopback
        from media_assets_tests.s3_server import BUCKET, start_seaweedfs

        seaweed = start_seaweedfs(run_dir / "seaweedfs")
        store_root = f"s3://{BUCKET}/scale-{stamp.lower()}"
        data["seaweedfs"] = seaweed.endpoint_url
    policy_copy = run_dir / "policy.yaml"
    shutil.copyfile(args.policy, policy_copy)
    instance = Instance(args.instance, run_dir / "dagster_home", args.pg_server,
                        f"media_assets_scale_{stamp}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MEDIA_ASSETS_"))}
    env.update(DAGSTER_HOME=str(instance.home), MEDIA_ASSETS_INBOX=str(inbox),
               MEDIA_ASSETS_STORE=store_root, MEDIA_ASSETS_POLICY=str(policy_copy),
               PYTHONUNBUFFERED="1", **instance.env, **(seaweed.env() if seaweed else {}))
    os.environ.update(seaweed.env() if seaweed else {})  # this process reads the store too
    ctx = {"run_dir": run_dir, "home": instance.home, "inbox": inbox, "store_root": store_root,
           "policy": policy_copy, "env": env, "instance": instance}
    exit_code = 0
    try:
        if not args.skip_bare:
            print(f"bare baseline over {len(flood)} files (2 processes) ...", flush=True)
            os.sync()
            data["bare"] = run_bare(flood, run_dir / "bare-store", policy_copy)
            shutil.rmtree(run_dir / "bare-store", ignore_errors=True)
            print(f"  {data['bare']['files_per_second']} files/s", flush=True)
        try:
            data["pipeline"] = run_live(args, ctx, flood, extra, shas)
        except (TimeoutError, RuntimeError, OSError) as exc:
            print(f"live part failed: {exc}", flush=True)
            data["pipeline"] = {"error": f"{type(exc).__name__}: {exc}"}
            exit_code = 1
        bare, flood_result = data.get("bare"), data["pipeline"].get("flood")
        if bare and flood_result:
            data["ratio"] = round(flood_result["files_per_second"] / bare["files_per_second"], 3)
            data["overhead_ms_per_file"] = round(
                (flood_result["wall_seconds"] - bare["wall_seconds"]) / args.files * 1000, 1)
        if not args.skip_history and not exit_code:
            try:
                data["history"] = run_history(args, ctx, extra[args.warmup:], shas)
            except (TimeoutError, RuntimeError, OSError) as exc:
                print(f"history part failed: {exc}", flush=True)
                data["history"] = {"error": f"{type(exc).__name__}: {exc}"}
                exit_code = 1
    finally:
        if seaweed is not None:
            seaweed.stop()
        if not args.keep:
            instance.drop()
            for name in ("store", "inbox", "bare-store"):
                shutil.rmtree(run_dir / name, ignore_errors=True)
    save_and_report(data, OUT_DIR, f"scale-{stamp}", report)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
