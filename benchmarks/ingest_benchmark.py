"""Ingest benchmark: the Dagster pipeline against a bare-library loop doing the same media work.

One invocation:
  1. generates N camera-like 12 MP JPEGs (+ ~5 % PNG, ~5 % WebP) into a cache (kept between runs);
  2. (a) bare baseline: a 2-process pool streams + hashes + stores each file, extracts its
         metadata and renders thumbnail + preview with the policy's specs, no Dagster;
     (b) pipeline: starts `dagster dev` on temp folders, measures drop -> thumbnail latency for
         single files, then drops all N files at once and times them until each has a catalog
         row or a quarantine record;
  3. prints a compact report and writes it as JSON to benchmarks/out/ingest-<timestamp>.json.

    .venv/bin/python benchmarks/ingest_benchmark.py --files 1000
    .venv/bin/python benchmarks/ingest_benchmark.py --files 40      # quick run
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from measure import (
    cmdline,
    cpu_busy_since,
    cpu_times,
    mib,
    pss_bytes,
    rss_bytes,
    save_and_report,
    sha256_of,
    tree_pids,
)

from media_assets.storage.local import fsync_dir

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "benchmarks" / "out"
CHUNK = 1024 * 1024

# ---------------------------------------------------------------------------------------------
# 1. Test files


BASE_PHOTOS = 6
BASE_SIZE = (4096, 3072)  # a little larger than the output, so each copy is a distinct crop
PHOTO_SIZE = (4000, 3000)
_bases: dict[int, Any] = {}


def _kind(index: int) -> str:
    """~5 % PNG, ~5 % WebP, the rest JPEG; fixed per index so the cache stays valid."""
    return {7: "png", 13: "webp"}.get(index % 20, "jpeg")


def _file_name(prefix: str, index: int, kind: str) -> str:
    return f"{prefix}-{index:05d}.{ {'jpeg': 'jpg'}.get(kind, kind) }"


def _base(number: int) -> Any:
    from media_assets.samples import synth_photo

    if number not in _bases:
        _bases[number] = synth_photo(BASE_SIZE, 1000 + number, noise=9.0)
    return _bases[number]


def _camera_exif(seed: int, orientation: int) -> bytes:
    from PIL import ExifTags, Image

    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Synthetic Optics"
    exif[ExifTags.Base.Model] = "SO-1 Mark II"
    exif[ExifTags.Base.Orientation] = orientation
    stamp = f"2024:05:{1 + seed % 28:02d} {seed % 24:02d}:{seed % 60:02d}:{(seed * 7) % 60:02d}"
    exif[ExifTags.Base.DateTime] = stamp
    exif[ExifTags.Base.Artist] = "Ada Example"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = stamp
    sub[ExifTags.Base.LensModel] = "SO 24-70mm f/2.8"
    return exif.tobytes()


def _varied_photo(seed: int) -> Any:
    """A cheap variation of a base photo: a shifted crop plus a noise patch (distinct bytes)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = _base(seed % BASE_PHOTOS)
    x = int(rng.integers(0, BASE_SIZE[0] - PHOTO_SIZE[0] + 1))
    y = int(rng.integers(0, BASE_SIZE[1] - PHOTO_SIZE[1] + 1))
    image = base.crop((x, y, x + PHOTO_SIZE[0], y + PHOTO_SIZE[1]))
    pw, ph = 192, 144
    px = int(rng.integers(0, PHOTO_SIZE[0] - pw))
    py = int(rng.integers(0, PHOTO_SIZE[1] - ph))
    patch = np.asarray(image.crop((px, py, px + pw, py + ph)), dtype=np.int16)
    patch = patch + rng.integers(-24, 25, patch.shape, dtype=np.int16)
    image.paste(Image.fromarray(np.clip(patch, 0, 255).astype(np.uint8), "RGB"), (px, py))
    return image


def generate_one(task: tuple[str, str, int]) -> int:
    """Write one test file (temp name, then rename); returns its size in bytes."""
    path_str, kind, seed = task
    path = Path(path_str)
    tmp = path.with_name(f".{path.name}.tmp")
    if kind == "jpeg":
        orientation = 6 if seed % 10 == 3 else 1  # some portrait shots, stored sideways
        _varied_photo(seed).save(tmp, "JPEG", quality=90, subsampling="4:2:2",
                                 exif=_camera_exif(seed, orientation))
    elif kind == "webp":
        _varied_photo(seed).save(tmp, "WEBP", quality=85, method=4)
    else:  # a graphic/screenshot-like PNG export: smooth content, 3.8 MP
        from media_assets.samples import synth_photo

        synth_photo((2400, 1600), seed, noise=3.0).save(tmp, "PNG")
    tmp.replace(path)
    return path.stat().st_size


def ensure_files(files_dir: Path, count: int, latency_count: int) -> tuple[list[Path], list[Path]]:
    """The N flood files and the single-drop latency files, generated only if missing."""
    files_dir.mkdir(parents=True, exist_ok=True)
    flood = [files_dir / _file_name("img", i, _kind(i)) for i in range(count)]
    latency = [files_dir / _file_name("lat", i, "jpeg") for i in range(latency_count)]
    tasks = [(str(p), _kind(i), i) for i, p in enumerate(flood) if not p.is_file()]
    tasks += [(str(p), "jpeg", 1_000_000 + i) for i, p in enumerate(latency) if not p.is_file()]
    if tasks:
        print(f"generating {len(tasks)} files into {files_dir} (2 processes) ...", flush=True)
        started = time.monotonic()
        # Spread the work so each worker builds only some of the base photos.
        tasks.sort(key=lambda t: t[2] % BASE_PHOTOS)
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            for done, _ in enumerate(pool.imap_unordered(generate_one, tasks, chunksize=4), 1):
                if done % 100 == 0 or done == len(tasks):
                    print(f"  {done}/{len(tasks)} ({time.monotonic() - started:.0f} s)",
                          flush=True)
    else:
        print(f"using {count + latency_count} cached files in {files_dir}", flush=True)
    return flood, latency




# ---------------------------------------------------------------------------------------------
# Measuring: RSS of a process tree, machine CPU


def _label(command: str) -> str:
    """A short name for a process of the tree, to group the peak's RSS by kind."""
    if "spawn_main" in command or "forkserver" in command:
        return "multiprocessing worker"
    words = [w for w in command.split() if not w.startswith("-")]
    if words and "python" in Path(words[0]).name:
        words = words[1:]
    if words and words[0] in ("-m", "-c"):
        words = words[1:]
    return " ".join(Path(words[0]).name if i == 0 else w
                    for i, w in enumerate(words[:3])) if words else command[:40]


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree every `interval` seconds; keeps the maxima."""

    def __init__(self, root_pid: int, *, include_root: bool, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.include_root, self.interval = root_pid, include_root, interval
        self.max_total = self.max_single = self.max_processes = self.max_total_pss = 0
        self.max_single_cmd = ""
        self.peak_breakdown: dict[str, list[int]] = {}  # label -> [processes, MiB] at peak
        self._stop_event = threading.Event()

    def sample(self) -> None:
        tree = tree_pids(self.root_pid)
        if not self.include_root:
            tree.remove(self.root_pid)
        sizes = {pid: rss_bytes(pid) for pid in tree}
        if sum(sizes.values()) > self.max_total:
            self.max_total = sum(sizes.values())
            breakdown: dict[str, list[int]] = {}
            for pid, size in sizes.items():
                entry = breakdown.setdefault(_label(cmdline(pid)), [0, 0])
                entry[0] += 1
                entry[1] += size
            self.peak_breakdown = {k: [n, round(b / 1024**2)] for k, (n, b) in
                                   sorted(breakdown.items(), key=lambda kv: -kv[1][1])}
        self.max_total_pss = max(self.max_total_pss, sum(pss_bytes(pid) for pid in tree))
        self.max_processes = max(self.max_processes, len(tree))
        if sizes:
            pid = max(sizes, key=lambda p: sizes[p])
            if sizes[pid] > self.max_single:
                self.max_single, self.max_single_cmd = sizes[pid], cmdline(pid)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)








# ---------------------------------------------------------------------------------------------
# 2a. Bare baseline: the same media work in a plain process pool


def _durable_rename(tmp: Path, target: Path) -> None:
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(target)
    fsync_dir(target.parent)


def bare_one(task: tuple[str, str, tuple, int, int]) -> tuple[str, float, int, int]:
    """Stream + hash + store the original, extract metadata, render and store derivatives."""
    from media_assets.codec.images import extract_metadata, render_derivatives
    from media_assets.records.layout import derivative_key, metadata_key, original_key

    source, store_str, specs, max_pixels, draft_edge = task
    started = time.perf_counter()
    store = Path(store_str)
    staging = store / ".staging"
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=staging, prefix=".intake.tmp-")
    with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    cid = digest.hexdigest()
    extension = Path(source).suffix.lstrip(".").lower()
    stored = store / original_key(cid, extension)
    stored.parent.mkdir(parents=True, exist_ok=True)
    Path(tmp_name).replace(stored)
    fsync_dir(stored.parent)

    meta = extract_metadata(stored, max_pixels)
    meta_tmp = staging / f".{cid}.json.tmp"
    meta_tmp.write_text(json.dumps(meta, sort_keys=True))
    _durable_rename(meta_tmp, store / metadata_key(cid, "bare"))

    scratch = staging / f"derive-{cid}"
    try:
        rendered = render_derivatives(stored, specs, scratch, max_pixels, draft_edge=draft_edge)
        by_name = {spec.name: spec for spec in specs}
        for name, item in rendered.items():
            spec = by_name[name]
            target = store / derivative_key(name, spec.spec_hash, cid, spec.extension)
            _durable_rename(item.path, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.perf_counter() - started
    return cid, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, os.getpid()


def run_bare(files: list[Path], store: Path, policy_path: Path) -> dict[str, Any]:
    from media_assets.core.policy import load_policy

    rules = load_policy(policy_path)
    specs = tuple(rules.derivatives)
    draft_edge = max(spec.long_edge for spec in specs)
    (store / ".staging").mkdir(parents=True, exist_ok=True)
    tasks = [(str(p), str(store), specs, rules.limits.max_pixels, draft_edge) for p in files]
    sampler = TreeSampler(os.getpid(), include_root=False)
    per_worker_peak: dict[int, int] = {}
    per_file: list[float] = []
    errors: list[str] = []
    cpu_start = cpu_times()
    started = time.monotonic()
    sampler.start()
    try:
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            results = pool.imap_unordered(_bare_safe, tasks, chunksize=1)
            for done, (_cid, elapsed, peak_kib, pid, error) in enumerate(results, 1):
                if error:
                    errors.append(error)
                else:
                    per_file.append(elapsed)
                    per_worker_peak[pid] = max(per_worker_peak.get(pid, 0), peak_kib)
                if done % 200 == 0:
                    print(f"  bare: {done}/{len(files)} ({time.monotonic() - started:.0f} s)",
                          flush=True)
    finally:
        sampler.stop()
    wall = time.monotonic() - started
    return {
        "wall_seconds": round(wall, 2),
        "files_per_second": round(len(files) / wall, 2),
        "per_file_ms_median": round(statistics.median(per_file) * 1000, 1) if per_file else None,
        "cpu_busy": cpu_busy_since(cpu_start),
        "peak_rss_total_mib": mib(sampler.max_total),
        "peak_pss_total_mib": mib(sampler.max_total_pss),
        "peak_rss_single_mib": mib(sampler.max_single),
        "peak_rss_workers_rusage_sum_mib": round(sum(per_worker_peak.values()) / 1024, 1),
        "errors": errors[:10],
        "error_count": len(errors),
    }


def _bare_safe(task: tuple) -> tuple[str, float, int, int, str | None]:
    try:
        return (*bare_one(task), None)
    except Exception as exc:  # noqa: BLE001 - reported per file, the loop goes on
        return task[0], 0.0, 0, os.getpid(), f"{Path(task[0]).name}: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------
# 2b. The pipeline under `dagster dev`


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DagsterDev:
    """`dagster dev` in its own session; stopped with SIGINT to the parent only."""

    def __init__(self, run_dir: Path, env: dict[str, str], port: int) -> None:
        self.run_dir, self.env, self.port = run_dir, env, port
        self.log_path = run_dir / "dagster-dev.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        dagster = Path(sys.executable).parent / "dagster"
        command = [str(dagster)] if dagster.exists() else [sys.executable, "-m", "dagster"]
        command += ["dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.port}/server_info"
        while time.monotonic() - started < timeout:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited early; see {self.log_path}:\n"
                                   + self.log_tail())
            with (contextlib.suppress(urllib.error.URLError, OSError),
                  urllib.request.urlopen(url, timeout=2) as response):
                if response.status == 200:
                    return time.monotonic() - started
            time.sleep(0.5)
        raise TimeoutError(f"the webserver did not answer {url} within {timeout:.0f} s; "
                           f"see {self.log_path}")

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)  # the parent only: the group hangs on SIGINT
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("dagster dev did not stop within 30 s of SIGINT: SIGKILL to its group",
                      flush=True)
        # Anything still alive in its process group (the parent, or a run it left behind).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _group_alive(proc.pid):
            time.sleep(0.2)
        if _group_alive(proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        self.proc = None


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreWatch:
    """What the pipeline's store says about a set of content ids (polled, cached per file)."""

    def __init__(self, store: Path, thumbnail_key: Any) -> None:
        self.store, self.thumbnail_key = store, thumbnail_key
        self._fragments_read: dict[str, set[str]] = {}

    def has_thumbnail(self, cid: str) -> bool:
        return (self.store / self.thumbnail_key(cid)).is_file()

    def quarantined(self) -> dict[str, str]:
        found = {}
        for record in self.store.glob("quarantine/records/*/*.json"):
            with contextlib.suppress(OSError, ValueError):
                found[record.stem] = json.loads(record.read_text()).get("reason", "?")
        return found

    def catalogued(self) -> set[str]:
        import polars as pl

        ids: set[str] = set()
        for fragment in sorted(self.store.glob("catalog/fragments/*/*.parquet")):
            if fragment.name.startswith("."):
                continue
            key = str(fragment)
            if key not in self._fragments_read:
                try:
                    frame = pl.read_parquet(fragment, columns=["content_id"])
                except (OSError, pl.exceptions.PolarsError):
                    continue  # replaced between listing and reading: next poll
                self._fragments_read[key] = set(frame["content_id"].to_list())
            ids |= self._fragments_read[key]
        return ids


def _atomic_drop(source: Path, inbox: Path, name: str) -> float:
    """Copy to a dotfile in the inbox (ignored by the sensor), then rename: returns drop time."""
    hidden = inbox / f".{name}.part"
    shutil.copyfile(source, hidden)
    hidden.replace(inbox / name)
    return time.time()


def measure_latency(files: list[Path], shas: dict[Path, str], inbox: Path, watch: StoreWatch,
                    timeout: float, label: str) -> list[dict[str, Any]]:
    results = []
    for number, source in enumerate(files, 1):
        cid = shas[source]
        dropped = _atomic_drop(source, inbox, f"{label}-{number}-{source.name}")
        thumb_at = catalog_at = None
        while True:
            now = time.time()
            if thumb_at is None and watch.has_thumbnail(cid):
                thumb_at = now
            if thumb_at is not None and cid in watch.catalogued():
                catalog_at = now
                break
            if cid in watch.quarantined():
                raise RuntimeError(f"latency file {source.name} was quarantined")
            if now - dropped > timeout:
                raise TimeoutError(f"{label} file {number}: no thumbnail/catalog row within "
                                   f"{timeout:.0f} s of the drop")
            time.sleep(0.1)
        result = {"file": source.name, "thumbnail_s": round(thumb_at - dropped, 2),
                  "catalog_s": round(catalog_at - dropped, 2)}
        print(f"  {label} {number}: thumbnail after {result['thumbnail_s']} s, "
              f"catalog row after {result['catalog_s']} s", flush=True)
        results.append(result)
    return results


def measure_flood(files: list[Path], shas: dict[Path, str], inbox: Path, watch: StoreWatch,
                  timeout: float) -> dict[str, Any]:
    hidden = inbox / ".bench-drop"
    hidden.mkdir()
    copy_started = time.monotonic()
    names = []
    for number, source in enumerate(files):
        name = f"flood-{number:05d}-{source.name}"
        shutil.copyfile(source, hidden / name)
        names.append(name)
    os.sync()  # the copies' write-back must not compete with the pipeline's own fsyncs
    copy_seconds = time.monotonic() - copy_started
    expected = {shas[p] for p in files}

    dropped = time.time()
    for name in names:
        staged = hidden / name
        os.utime(staged)  # the file "arrives" now: the sensor's settle time applies as usual
        staged.replace(inbox / name)
    hidden.rmdir()
    print(f"  dropped {len(names)} files ({copy_seconds:.1f} s to copy them beforehand)",
          flush=True)

    first_thumb = all_thumbs = None
    last_report = time.monotonic()
    while True:
        now = time.time()
        thumbs = sum(watch.has_thumbnail(cid) for cid in expected)
        if thumbs and first_thumb is None:
            first_thumb = now
        if thumbs == len(expected) and all_thumbs is None:
            all_thumbs = now
        quarantined = watch.quarantined()
        done = (watch.catalogued() | set(quarantined)) & expected
        if len(done) == len(expected):
            finished = now
            break
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            print(f"  {now - dropped:5.0f} s: {thumbs} thumbnails, {len(done)}/{len(expected)} "
                  "catalogued or quarantined", flush=True)
        if now - dropped > timeout:
            raise TimeoutError(f"gave up after {timeout:.0f} s: {len(done)}/{len(expected)} "
                               f"files catalogued or quarantined, {thumbs} thumbnails")
        time.sleep(0.5)
    wall = finished - dropped
    quarantined_expected = {c: r for c, r in quarantined.items() if c in expected}
    return {
        "dropped_at": dropped,
        "copy_into_inbox_seconds": round(copy_seconds, 2),
        "wall_seconds": round(wall, 2),
        "files_per_second": round(len(files) / wall, 2),
        "first_thumbnail_s": round(first_thumb - dropped, 2) if first_thumb else None,
        "all_thumbnails_s": round(all_thumbs - dropped, 2) if all_thumbs else None,
        "quarantined": len(quarantined_expected),
        "quarantine_reasons": sorted(set(quarantined_expected.values())),
        "left_in_inbox": sum(1 for p in inbox.iterdir() if not p.name.startswith(".")),
    }


def analyse_runs(dagster_home: Path, store: Path, flood_dropped_at: float | None) -> dict:
    """Where each batch's run spent its time, from the instance's event log (after the stop)."""
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.from_config(str(dagster_home))
    try:
        # enqueued (by the sensor) -> starting (the queue let it go; its process is launched)
        # -> started (the run process is up) -> steps -> ended.
        marks = {DagsterEventType.RUN_ENQUEUED: "enqueued",
                 DagsterEventType.RUN_STARTING: "starting",
                 DagsterEventType.RUN_START: "started", DagsterEventType.RUN_SUCCESS: "ended",
                 DagsterEventType.RUN_FAILURE: "ended"}
        runs = []
        for record in instance.get_run_records():
            run = record.dagster_run
            times: dict[str, float] = {}
            for entry in instance.all_logs(run.run_id, of_type=set(marks)):
                times.setdefault(marks[entry.dagster_event.event_type], entry.timestamp)
            created = times.get("enqueued") or record.create_timestamp.timestamp()
            stats = instance.get_run_step_stats(run.run_id)
            steps = {s.step_key: round(s.end_time - s.start_time, 2)
                     for s in stats if s.start_time and s.end_time}
            step_starts = [s.start_time for s in stats if s.start_time]
            step_ends = [s.end_time for s in stats if s.end_time]
            key = run.tags.get("dagster/partition")
            manifest = store / "batches" / f"{key}.json"
            files, closed = None, None
            if manifest.is_file():
                data = json.loads(manifest.read_text())
                files, closed = len(data.get("sources") or []), data.get("closed_because")

            def gap(a: float | None, b: float | None) -> float | None:
                return round(b - a, 2) if a is not None and b is not None else None

            runs.append({
                "partition": key, "status": run.status.value, "files": files,
                "closed_because": closed,
                "created_after_flood_drop_s": gap(flood_dropped_at, created)
                if flood_dropped_at and created >= flood_dropped_at else None,
                "queued_s": gap(created, times.get("starting")),
                "launch_to_start_s": gap(times.get("starting"), times.get("started")),
                "start_to_first_step_s": gap(times.get("started"),
                                             min(step_starts) if step_starts else None),
                "steps_s": steps,
                "last_step_to_end_s": gap(max(step_ends) if step_ends else None,
                                          times.get("ended")),
                "total_s": gap(created, times.get("ended")),
                "_created": created,
            })
        runs.sort(key=lambda r: r["_created"])
        for run in runs:
            del run["_created"]
        return {"runs": runs, "summary": _summarise_runs(runs)}
    finally:
        instance.dispose()


def _summarise_runs(runs: list[dict]) -> dict[str, Any]:
    def median(values: list) -> float | None:
        values = [v for v in values if v is not None]
        return round(statistics.median(values), 2) if values else None

    step_names = sorted({name for r in runs for name in r["steps_s"]})
    return {
        "runs": len(runs),
        "failed": [r["partition"] for r in runs if r["status"] != "SUCCESS"],
        "median_queued_s": median([r["queued_s"] for r in runs]),
        "median_launch_to_start_s": median([r["launch_to_start_s"] for r in runs]),
        "median_start_to_first_step_s": median([r["start_to_first_step_s"] for r in runs]),
        "median_step_s": {n: median([r["steps_s"].get(n) for r in runs]) for n in step_names},
        "median_total_s": median([r["total_s"] for r in runs]),
        "over_budget_batches": sum("over budget" in (r["closed_because"] or "") for r in runs),
    }


def run_pipeline(args: argparse.Namespace, run_dir: Path, flood: list[Path],
                 latency: list[Path], shas: dict[Path, str], policy_path: Path) -> dict:
    from media_assets.core.policy import load_policy
    from media_assets.records.layout import derivative_key

    spec = load_policy(policy_path).derivative("thumbnail")

    def thumbnail_key(cid: str) -> str:
        return derivative_key(spec.name, spec.spec_hash, cid, spec.extension)

    home, inbox, store = run_dir / "dagster_home", run_dir / "inbox", run_dir / "store"
    for folder in (home, inbox, store):
        folder.mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    policy_copy = run_dir / "policy.yaml"
    shutil.copyfile(policy_path, policy_copy)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DAGSTER_", "MEDIA_ASSETS_"))}
    env.update(DAGSTER_HOME=str(home), MEDIA_ASSETS_INBOX=str(inbox),
               MEDIA_ASSETS_STORE=str(store), MEDIA_ASSETS_POLICY=str(policy_copy),
               PYTHONUNBUFFERED="1")
    dev = DagsterDev(run_dir, env, free_port())
    watch = StoreWatch(store, thumbnail_key)
    result: dict[str, Any] = {"dagster_log": str(dev.log_path), "dagster_home": str(home)}
    sampler = None
    try:
        print(f"starting dagster dev on port {dev.port} (log: {dev.log_path}) ...", flush=True)
        dev.start()
        result["startup_s"] = round(dev.wait_ready(args.start_timeout), 1)
        sampler = TreeSampler(dev.proc.pid, include_root=True)
        sampler.start()
        print(f"  webserver up after {result['startup_s']} s", flush=True)

        warm = latency[:args.warmup]
        if warm:
            print("warm-up drop (not counted: first sensor tick and run) ...", flush=True)
            result["warmup"] = measure_latency(warm, shas, inbox, watch,
                                               args.start_timeout, "warm-up")
        print(f"one-file latency, {len(latency) - len(warm)} drops ...", flush=True)
        samples = measure_latency(latency[len(warm):], shas, inbox, watch,
                                  args.latency_timeout, "latency")
        thumbs = [s["thumbnail_s"] for s in samples]
        result["latency"] = {
            "samples": samples,
            "thumbnail_p50_s": round(statistics.median(thumbs), 2) if thumbs else None,
            "thumbnail_max_s": max(thumbs) if thumbs else None,
            "catalog_p50_s": round(statistics.median(s["catalog_s"] for s in samples), 2)
            if samples else None,
        }
        print(f"flood of {len(flood)} files ...", flush=True)
        timeout = args.flood_timeout or 600 + 3 * len(flood)
        cpu_start = cpu_times()
        result["flood"] = measure_flood(flood, shas, inbox, watch, timeout)
        result["flood"]["cpu_busy"] = cpu_busy_since(cpu_start)
        # Every run has finished by now: what is still alive is the idle footprint (plus
        # anything a finished run left behind).
        time.sleep(args.settle_after)
        idle = TreeSampler(dev.proc.pid, include_root=True)
        idle.sample()
        result["after_flood"] = {"seconds_after_last_file": args.settle_after,
                                 "processes": idle.max_processes,
                                 "rss_total_mib": mib(idle.max_total),
                                 "pss_total_mib": mib(idle.max_total_pss),
                                 "breakdown": idle.peak_breakdown}
    finally:
        if sampler is not None:
            sampler.stop()
            result["peak_rss_total_mib"] = mib(sampler.max_total)
            result["peak_pss_total_mib"] = mib(sampler.max_total_pss)
            result["peak_rss_breakdown"] = sampler.peak_breakdown
            result["peak_rss_single_mib"] = mib(sampler.max_single)
            result["peak_rss_single_cmd"] = sampler.max_single_cmd
            result["max_processes"] = sampler.max_processes
        print("stopping dagster dev ...", flush=True)
        stop_started = time.monotonic()
        dev.stop()
        result["stop_s"] = round(time.monotonic() - stop_started, 1)
    try:
        flood_drop = result.get("flood", {}).get("dropped_at")
        result["runs"] = analyse_runs(home, store, flood_drop)
    except Exception as exc:  # noqa: BLE001 - the analysis is a bonus; keep the measurements
        result["runs"] = {"error": f"{type(exc).__name__}: {exc}"}
    return result


# ---------------------------------------------------------------------------------------------
# 3. Report


def report(data: dict[str, Any]) -> str:
    bare, pipe = data.get("bare"), data.get("pipeline", {})
    flood, lat = pipe.get("flood", {}), pipe.get("latency", {})
    n = data["files"]
    lines = [f"ingest benchmark: {n} files ({data['input_mib']} MiB), {data['cpus']} CPUs, "
             f"{data['started_at']}"]
    if bare:
        lines.append(f"  bare loop      {bare['files_per_second']:7.2f} files/s  "
                     f"({bare['wall_seconds']} s, CPU busy {bare['cpu_busy']:.0%}, "
                     f"peak RSS {bare['peak_rss_total_mib']} MiB total (PSS "
                     f"{bare['peak_pss_total_mib']}) / {bare['peak_rss_single_mib']} MiB one "
                     "process)")
    if flood:
        lines.append(f"  pipeline       {flood['files_per_second']:7.2f} files/s  "
                     f"({flood['wall_seconds']} s, CPU busy {flood['cpu_busy']:.0%}, "
                     f"peak RSS {pipe['peak_rss_total_mib']} MiB total (PSS "
                     f"{pipe['peak_pss_total_mib']}) / {pipe['peak_rss_single_mib']} MiB one "
                     f"process, {pipe['max_processes']} processes at most)")
        if "ratio" in data:
            lines.append(f"  ratio pipeline/bare  {data['ratio']:.2f}  (goal >= 0.9)"
                         f"   overhead {data['overhead_ms_per_file']:.0f} ms/file")
        lines.append(f"  flood: first thumbnail {flood['first_thumbnail_s']} s, all thumbnails "
                     f"{flood['all_thumbnails_s']} s, quarantined {flood['quarantined']}, "
                     f"left in inbox {flood['left_in_inbox']}")
    idle = pipe.get("after_flood")
    if idle:
        lines.append(f"  {idle['seconds_after_last_file']:.0f} s after the flood: "
                     f"{idle['processes']} processes, RSS {idle['rss_total_mib']} MiB "
                     f"(PSS {idle['pss_total_mib']})")
    if lat:
        lines.append(f"  one-file drop -> thumbnail  p50 {lat['thumbnail_p50_s']} s, "
                     f"max {lat['thumbnail_max_s']} s  (goal <= 10 s); catalog row p50 "
                     f"{lat['catalog_p50_s']} s")
    summary = pipe.get("runs", {}).get("summary")
    if summary:
        steps = ", ".join(f"{k} {v}" for k, v in summary["median_step_s"].items())
        lines.append(f"  runs: {summary['runs']} ({len(summary['failed'])} failed); median "
                     f"queued {summary['median_queued_s']} s, launch->start "
                     f"{summary['median_launch_to_start_s']} s, start->first step "
                     f"{summary['median_start_to_first_step_s']} s, total "
                     f"{summary['median_total_s']} s")
        lines.append(f"  median step seconds: {steps}")
        if summary["over_budget_batches"]:
            lines.append(f"  {summary['over_budget_batches']} batch(es) closed 'over budget' "
                         "(daily partition budget held them back)")
    if "error" in pipe:
        lines.append(f"  PIPELINE FAILED: {pipe['error']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="files in the flood (1000)")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "media_assets_bench",
                        help="cache of generated files and scratch folders")
    parser.add_argument("--policy", type=Path, default=REPO / "policy.yaml")
    parser.add_argument("--latency-drops", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1,
                        help="single drops before the latency drops, reported apart")
    parser.add_argument("--start-timeout", type=float, default=180.0)
    parser.add_argument("--latency-timeout", type=float, default=120.0)
    parser.add_argument("--flood-timeout", type=float, default=0.0,
                        help="seconds; 0 = 600 + 3 per file")
    parser.add_argument("--settle-after", type=float, default=10.0,
                        help="seconds after the flood before the idle process snapshot")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the stores and inbox")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.files < 1:
        raise SystemExit("--files must be at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # Started in the background by a shell (`cmd &`): SIGINT is ignored and `dagster dev`
        # would inherit that, so the SIGINT that stops it would do nothing. A caught signal
        # is reset to the default in children.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    workdir = args.workdir.resolve()
    flood, latency = ensure_files(workdir / "files", args.files,
                                  args.warmup + args.latency_drops)
    print("hashing inputs ...", flush=True)
    shas = {p: sha256_of(p) for p in flood + latency}
    if len(set(shas.values())) != len(shas):
        print("warning: some generated files are byte-identical", flush=True)
    data: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"), "files": args.files,
        "input_mib": mib(sum(p.stat().st_size for p in flood)),
        "types": {k: sum(_kind(i) == k for i in range(args.files))
                  for k in ("jpeg", "png", "webp")},
        "cpus": os.cpu_count(), "policy": str(args.policy), "workdir": str(workdir),
    }
    run_dir = workdir / f"run-{stamp}"
    run_dir.mkdir(parents=True)
    exit_code = 0
    try:
        if not args.skip_bare:
            print(f"bare baseline over {len(flood)} files (2 processes) ...", flush=True)
            os.sync()  # no pending write-back of generated files competing with the fsyncs
            data["bare"] = run_bare(flood, run_dir / "bare-store", args.policy)
            if not args.keep:
                shutil.rmtree(run_dir / "bare-store", ignore_errors=True)
            print(f"  {data['bare']['files_per_second']} files/s", flush=True)
        if not args.skip_pipeline:
            try:
                data["pipeline"] = run_pipeline(args, run_dir, flood, latency, shas, args.policy)
            except (TimeoutError, RuntimeError) as exc:
                print(f"pipeline measurement failed: {exc}", flush=True)
                data["pipeline"] = {"error": str(exc)}
                exit_code = 1
        bare, flood_result = data.get("bare"), data.get("pipeline", {}).get("flood")
        if bare and flood_result:
            data["ratio"] = round(flood_result["files_per_second"] / bare["files_per_second"], 3)
            data["overhead_ms_per_file"] = round(
                (flood_result["wall_seconds"] - bare["wall_seconds"]) / args.files * 1000, 1)
    finally:
        if not args.keep:
            for name in ("bare-store", "store", "inbox"):
                shutil.rmtree(run_dir / name, ignore_errors=True)
    save_and_report(data, OUT_DIR, f"ingest-{stamp}", report)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
