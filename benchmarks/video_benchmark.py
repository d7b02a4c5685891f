"""Video benchmark: the Dagster pipeline's video lane against a bare PyAV loop doing the same
web rendition.

One invocation:
  1. generates N synthetic clips (1920 x 1080, 30 fps, H.264 + AAC stereo, MP4; default 20 x
     30 s under `dagster dev`, 10 x 20 s in process) with `media_assets.samples.av.write_video`
     into a cache (kept between runs, not timed);
  2. (a) bare baseline: a pool of os.cpu_count() processes, one clip per task, transcodes each
         clip the way the pipeline's web rendition does (long edge 720, even sides, x264 crf 23
         veryfast yuv420p, at most 30 fps, AAC 48 kHz stereo 128 kb/s, fast-start MP4), plain
         PyAV, no Dagster;
     (b) pipeline, one of (--pipeline):
         dev         (default) `dagster dev` on temp folders as ingest_benchmark.py starts it
                     (SQLite instance, the pool limits `make dev` sets, the policy's batching),
                     the clips renamed into the inbox together, clocked from that drop until
                     every clip has a catalog row or a quarantine record (the catalog step
                     comes after the web rendition in `process_av`);
         in-process  the real inbox sensor ticked in-process and each batch's job
                     (`process_av`) run with `execute_in_process` on an ephemeral instance,
                     every clip in one batch;
  3. prints a compact report and writes it as JSON to benchmarks/out/video-<timestamp>.json.

    .venv/bin/python benchmarks/video_benchmark.py    # dagster dev, 20 x 30 s 1080p (issue 14)
    .venv/bin/python benchmarks/video_benchmark.py --pipeline in-process   # 10 x 20 s 1080p
    .venv/bin/python benchmarks/video_benchmark.py --clips 2 --seconds 2 --width 1280 --height 720
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from measure import (
    RoleSampler,
    cpu_busy_since,
    cpu_times,
    mib,
    pss_bytes,
    rss_bytes,
    save_and_report,
    sha256_of,
    tree_cpu_seconds,
    tree_pids,
)

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "benchmarks" / "out"
RATIO_GOAL = 0.9  # issue 14: under `dagster dev`, >= 0.9 of bare PyAV (measured, not asserted)
# Default clip set per pipeline mode: (clips, seconds each). Under `dagster dev`, issue 14's
# example (600 media-s; ~1.5 min of bare wall time at 6.7 media-s per wall-s, so pass more for
# 5 min of it); in process, the older, shorter set.
DEFAULT_CLIPS = {"dev": (20, 30.0), "in-process": (10, 20.0)}

# The web rendition as policy.yaml specifies it (video.rendition); the bare loop hard-codes it
# on purpose, so it does not share a line of code with media_assets.codec.rendition.
LONG_EDGE = 720
MAX_FPS = 30
CRF = 23
PRESET = "veryfast"
AUDIO_RATE = 48_000
AUDIO_BITRATE = 128_000

# Spawned workers (the bare pool, the pipeline's decode workers) import this module again as
# __mp_main__: keep the module-level imports light, Dagster is imported only where it is used.

# ---------------------------------------------------------------------------------------------
# 1. Test clips


def _clip_name(index: int, args: argparse.Namespace) -> str:
    """The parameters are in the name, so a cached clip is only reused for the same ones."""
    return (f"clip-{args.width}x{args.height}-{args.fps}fps-{args.seconds:g}s-"
            f"{index:03d}.mp4")


def generate_one(task: tuple[str, int, float, int, int, int]) -> int:
    """Write one clip (temp name, then rename); returns its size in bytes."""
    from media_assets.samples.av import write_video

    path_str, index, seconds, fps, width, height = task
    path = Path(path_str)
    tmp = path.with_name(f".{path.name}.tmp")
    # write_video is deterministic: a title tag per clip gives every clip its own bytes (and
    # content id), or the pipeline would store and render one clip once for all of them.
    write_video(tmp, seconds=seconds, fps=fps, size=(width, height), audio="stereo",
                audio_codec="aac", tags={"title": f"video benchmark clip {index}"},
                format="mp4")
    tmp.replace(path)
    return path.stat().st_size


def ensure_clips(files_dir: Path, args: argparse.Namespace) -> list[Path]:
    """The N clips, generated only if missing (os.cpu_count() processes)."""
    files_dir.mkdir(parents=True, exist_ok=True)
    clips = [files_dir / _clip_name(i, args) for i in range(args.clips)]
    tasks = [(str(p), i, args.seconds, args.fps, args.width, args.height)
             for i, p in enumerate(clips) if not p.is_file()]
    if tasks:
        processes = min(len(tasks), os.cpu_count() or 1)
        print(f"generating {len(tasks)} clips into {files_dir} ({processes} processes, "
              "not timed) ...", flush=True)
        started = time.monotonic()
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            for done, _ in enumerate(pool.imap_unordered(generate_one, tasks), 1):
                print(f"  {done}/{len(tasks)} ({time.monotonic() - started:.0f} s)", flush=True)
    else:
        print(f"using {len(clips)} cached clips in {files_dir}", flush=True)
    return clips


def media_seconds(path: Path) -> float:
    """The clip's duration from its container header."""
    import av

    with av.open(str(path)) as container:
        return container.duration / av.time_base if container.duration else 0.0


# ---------------------------------------------------------------------------------------------
# Measuring: RSS of a process tree, machine CPU (as in ingest_benchmark.py; /proc, no psutil)






class TreeSampler(threading.Thread):
    """Samples the summed RSS (and PSS) of this process and all its descendants every
    `interval` seconds; keeps the maxima."""

    def __init__(self, root_pid: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root_pid, self.interval = root_pid, interval
        self.max_total = self.max_total_pss = self.max_single = self.max_processes = 0
        self._stop_event = threading.Event()

    def sample(self) -> None:
        tree = tree_pids(self.root_pid)
        sizes = [rss_bytes(pid) for pid in tree]
        self.max_total = max(self.max_total, sum(sizes))
        self.max_single = max(self.max_single, *sizes)
        self.max_total_pss = max(self.max_total_pss, sum(pss_bytes(pid) for pid in tree))
        self.max_processes = max(self.max_processes, len(tree))

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def figures(self) -> dict[str, Any]:
        return {"peak_rss_tree_mib": mib(self.max_total),
                "peak_pss_tree_mib": mib(self.max_total_pss),
                "peak_rss_single_mib": mib(self.max_single),
                "max_processes": self.max_processes}


def rusage_mib() -> dict[str, float]:
    """ru_maxrss (KiB on Linux) so far: this process, and the largest descendant waited for.
    Both are maxima over the whole invocation, not per phase."""
    return {"self_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "children_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                                  / 1024, 1)}






def own_cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for descendants (the pools' workers)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


class CpuWatch:
    """The machine's busy CPU time over a phase, and how much of it was not ours: another
    process using the cores (tests, a build) makes both phases slower, and not equally.
    `tree_root`: a child we have not waited for yet (`dagster dev`), whose tree counts as ours."""

    def __init__(self, tree_root: int | None = None) -> None:
        self.tree_root = tree_root
        self.machine, self.own = cpu_times(), self._own()

    def _own(self) -> float:
        tree = tree_cpu_seconds(self.tree_root) if self.tree_root is not None else 0.0
        return own_cpu_seconds() + tree

    def figures(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        machine_busy = (cpu_times()[0] - self.machine[0]) / tick
        own = self._own() - self.own
        return {"cpu_busy": cpu_busy_since(self.machine), "cpu_seconds": round(own, 1),
                "other_processes_cpu_seconds": round(max(0.0, machine_busy - own), 1)}




def _median(values: list[float], digits: int = 1) -> float | None:
    return round(statistics.median(values), digits) if values else None


# ---------------------------------------------------------------------------------------------
# 2a. Bare baseline: the web rendition in a plain process pool, one clip per task


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def _fits(source: Any, video: Any, width: int, height: int, fps: float) -> bool:
    """An H.264/AAC MP4 within the long edge and frame rate: `when_needed` keeps it as is.
    (The generated clips carry no rotation, so the bare loop neither checks nor bakes it.)"""
    return (video.codec_context.name == "h264" and source.format.name.startswith("mov")
            and all(a.codec_context.name == "aac" for a in source.streams.audio)
            and max(width, height) <= LONG_EDGE and fps <= MAX_FPS)


def bare_one(task: tuple[str, str, str]) -> tuple[str, float, int, int, dict[str, Any]]:
    """Decode -> scale (long edge 720, even sides) -> libx264 + AAC 48 kHz stereo, MP4
    with +faststart; frames stream one at a time. Returns (name, seconds, ru_maxrss KiB, pid,
    what was done)."""
    import av

    source_str, out_dir, mode = task
    started = time.perf_counter()
    out_path = Path(out_dir) / f"{Path(source_str).stem}.mp4"
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    with av.open(source_str) as source:
        video_in = source.streams.video[0]
        video_in.thread_type = "AUTO"
        audio_in = source.streams.audio[0] if source.streams.audio else None
        width, height = video_in.codec_context.width, video_in.codec_context.height
        rate = video_in.average_rate or video_in.guessed_rate
        source_fps = round(float(rate), 3) if rate else float(MAX_FPS)
        fps = Fraction(min(source_fps, MAX_FPS)).limit_denominator(1001)
        scale = min(1.0, LONG_EDGE / max(width, height))
        out_w, out_h = _even(width * scale), _even(height * scale)
        if mode == "when_needed" and _fits(source, video_in, width, height, source_fps):
            shutil.copyfile(source_str, tmp)  # the pipeline links the original: one copy
            tmp.replace(out_path)
            return (Path(source_str).name, time.perf_counter() - started,
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, os.getpid(),
                    {"action": "skip", "width": width, "height": height})
        with av.open(str(tmp), "w", format="mp4",
                     options={"movflags": "+faststart"}) as out:
            video_out = out.add_stream("libx264", rate=fps,
                                       options={"crf": str(CRF), "preset": PRESET})
            video_out.width, video_out.height, video_out.pix_fmt = out_w, out_h, "yuv420p"
            audio_out = resampler = None
            if audio_in is not None:
                audio_out = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
                audio_out.bit_rate = AUDIO_BITRATE
                resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            streams = [video_in] + ([audio_in] if audio_in is not None else [])
            next_index = frames = 0
            for packet in source.demux(streams):
                for frame in packet.decode():
                    if packet.stream is video_in:
                        # Frame-rate cap: one output frame per 1/fps slot, the rest dropped.
                        index = int(float(frame.time or 0.0) * fps + 1e-6)
                        if index < next_index:
                            continue
                        scaled = frame.reformat(width=out_w, height=out_h, format="yuv420p")
                        scaled.pts, scaled.time_base = index, 1 / fps
                        out.mux(video_out.encode(scaled))
                        next_index, frames = index + 1, frames + 1
                    else:
                        for resampled in resampler.resample(frame):
                            resampled.pts = None
                            out.mux(audio_out.encode(resampled))
            out.mux(video_out.encode())
            if audio_out is not None:
                out.mux(audio_out.encode())
    tmp.replace(out_path)
    return (Path(source_str).name, time.perf_counter() - started,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, os.getpid(),
            {"action": "transcode", "width": out_w, "height": out_h, "fps": float(fps),
             "frames": frames, "bytes": out_path.stat().st_size})


def _bare_safe(task: tuple[str, str, str]) -> tuple[str, float, int, int, dict[str, Any]]:
    try:
        return bare_one(task)
    except Exception as exc:  # noqa: BLE001 - reported per clip, the loop goes on
        return Path(task[0]).name, 0.0, 0, os.getpid(), {"error": f"{type(exc).__name__}: {exc}"}


def run_bare(clips: list[Path], out_dir: Path, mode: str) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = os.cpu_count() or 1
    tasks = [(str(p), str(out_dir), mode) for p in clips]
    sampler = TreeSampler(os.getpid())
    per_worker_peak: dict[int, int] = {}
    per_file: list[float] = []
    outputs: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    cpu = CpuWatch()
    started = time.monotonic()
    sampler.start()
    try:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.imap_unordered(_bare_safe, tasks, chunksize=1)
            for done, (name, elapsed, peak_kib, pid, output) in enumerate(results, 1):
                if "error" in output:
                    errors.append(f"{name}: {output['error']}")
                else:
                    per_file.append(elapsed)
                    outputs[name] = output
                    per_worker_peak[pid] = max(per_worker_peak.get(pid, 0), peak_kib)
                print(f"  bare: {done}/{len(clips)} ({time.monotonic() - started:.0f} s)",
                      flush=True)
    finally:
        sampler.stop()
    wall = time.monotonic() - started
    actions = sorted({o["action"] for o in outputs.values()})
    return {
        "wall_seconds": round(wall, 2),
        "workers": workers,
        "per_clip_s_median": _median(per_file, 2),
        **cpu.figures(),
        **sampler.figures(),
        "peak_rss_workers_rusage_mib": sorted(round(k / 1024, 1)
                                              for k in per_worker_peak.values()),
        "rusage_after": rusage_mib(),
        "actions": actions,
        "output": next(iter(outputs.values()), None),
        "errors": errors[:10],
        "error_count": len(errors),
    }


# ---------------------------------------------------------------------------------------------
# 2b. The pipeline in-process: the real sensor and the real job on an ephemeral instance


def write_policy(source: Path, target: Path, mode: str,
                 one_batch: tuple[int, int] | None = None) -> None:
    """The policy with the rendition mode; with `one_batch` (clips, total bytes), every clip
    in ONE av batch, closed at once (the in-process mode; `dagster dev` keeps the batching)."""
    import yaml

    data = yaml.safe_load(source.read_text())
    if one_batch is not None:
        clips, total_bytes = one_batch
        batching = data.setdefault("batching", {})
        batching["av_max_files"] = max(int(batching.get("av_max_files", 16)), clips)
        batching["av_max_bytes"] = max(int(batching.get("av_max_bytes", 0)), total_bytes + 1)
        batching["target_batch_seconds"] = 1e9  # never closed by estimated work
        batching["settle_seconds"] = 0.5
        batching["max_wait_seconds"] = 0.1
    rendition = data.setdefault("video", {}).setdefault("rendition", {})
    rendition["mode"] = mode
    target.write_text(yaml.safe_dump(data, sort_keys=False))


def _step_stats(instance: Any, run_id: str) -> dict[str, float]:
    return {s.step_key: round(s.end_time - s.start_time, 2)
            for s in instance.get_run_step_stats(run_id) if s.start_time and s.end_time}


def _materialization_seconds(run: Any) -> dict[str, float]:
    """The "seconds" each asset reports in its materialization metadata (its own work)."""
    found = {}
    for event in run.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        value = materialization.metadata.get("seconds")
        if value is not None:
            found[materialization.asset_key.to_user_string()] = round(float(value.value), 2)
    return found


def _worker_ms(store_root: Path, batch_key: str) -> dict[str, dict[str, float | None]]:
    """Per-file milliseconds each step's workers spent (batches/results/<key>/<step>.json)."""
    found = {}
    for path in sorted((store_root / "batches" / "results" / batch_key).glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data.get("ms"), dict) and data["ms"]:
            values = list(data["ms"].values())
            found[path.stem] = {"median_ms": _median(values), "sum_s": round(sum(values) / 1000, 1)}
    return found


# The run's console logger at WARNING: its DEBUG event lines would flood the report.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_pipeline(clips: list[Path], shas: dict[Path, str], run_dir: Path, policy_path: Path,
                 mode: str, total_bytes: int) -> dict[str, Any]:
    # Imported before the clock starts: in production the run process has its own import cost
    # (see ingest_benchmark.py), here only the steps and Dagster's in-process orchestration
    # are timed.
    import dagster
    from dagster import DagsterEventType, DagsterInstance, SkipReason, build_sensor_context

    # The same warnings pytest ignores (pyproject.toml): beta/preview parameters of the defs.
    for category in (DeprecationWarning, dagster.BetaWarning, dagster.PreviewWarning):
        warnings.filterwarnings("ignore", category=category)
    from media_assets.core.policy import load_policy
    from media_assets.definitions import defs
    from media_assets.defs.resources import (
        AlertNotifier,
        DecodeWorkers,
        InboxResource,
        MediaStorage,
        PolicyResource,
    )
    from media_assets.defs.sensors import inbox_sensor
    from media_assets.records.manifest import load_manifest
    from media_assets.storage import LocalObjectStore

    inbox, store_root, policy_copy = run_dir / "inbox", run_dir / "store", run_dir / "policy.yaml"
    inbox.mkdir(parents=True)
    store_root.mkdir(parents=True)
    write_policy(policy_path, policy_copy, mode, (len(clips), total_bytes))
    copy_started = time.monotonic()
    past = time.time() - 120  # settled long ago: the first tick takes every clip
    for clip in clips:
        target = inbox / clip.name
        shutil.copyfile(clip, target)
        os.utime(target, (past, past))
    os.sync()  # the copies' write-back must not compete with the pipeline's own fsyncs
    copy_seconds = time.monotonic() - copy_started

    def resources() -> dict[str, Any]:
        storage = MediaStorage(root=str(store_root))
        return {"storage": storage,
                "inbox": InboxResource(root=str(inbox)),
                "policy": PolicyResource(path=str(policy_copy)),
                "workers": DecodeWorkers()}

    instance = DagsterInstance.ephemeral()
    sampler = TreeSampler(os.getpid())
    cpu = CpuWatch()
    started = time.monotonic()
    sampler.start()
    try:
        # One sensor evaluation, registering the partitions it asks for like the daemon does.
        sensor_resources = {**{k: v for k, v in resources().items() if k != "workers"},
                            "alerts": AlertNotifier()}  # webhook off: the audit log only
        context = build_sensor_context(instance=instance, resources=sensor_resources,
                                       cursor=None)
        result = inbox_sensor(context)
        tick_seconds = time.monotonic() - started
        if isinstance(result, SkipReason):
            raise RuntimeError(f"the sensor launched nothing: {result.skip_message}")
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name,
                                            list(request.partition_keys))
        print(f"  sensor tick: {len(result.run_requests)} run(s) "
              f"({', '.join(r.job_name for r in result.run_requests)}) after "
              f"{tick_seconds:.2f} s", flush=True)
        executed = []
        for request in result.run_requests:
            run_started = time.monotonic()
            job = defs.resolve_job_def(request.job_name)
            run = job.execute_in_process(partition_key=request.partition_key,
                                         instance=instance, resources=resources(),
                                         run_config=QUIET, raise_on_error=False)
            executed.append((request, run, time.monotonic() - run_started))
            print(f"  run {request.partition_key} ({request.job_name}): "
                  f"{'success' if run.success else 'FAILED'} in "
                  f"{time.monotonic() - run_started:.1f} s", flush=True)
    finally:
        sampler.stop()
    wall = time.monotonic() - started
    cpu_figures = cpu.figures()  # the decode workers were joined at the end of each run

    # What each run did, read after the clock stopped.
    runs: list[dict[str, Any]] = []
    for request, run, run_seconds in executed:
        manifest = load_manifest(LocalObjectStore(store_root), request.partition_key) or {}
        evaluations = run.get_asset_check_evaluations()
        runs.append({
            "partition": request.partition_key, "job": request.job_name,
            "lane": manifest.get("lane"), "files": len(manifest.get("sources") or []),
            "closed_because": manifest.get("closed_because"),
            "success": run.success, "wall_seconds": round(run_seconds, 2),
            "steps_s": _step_stats(instance, run.run_id),
            "materialization_seconds": _materialization_seconds(run),
            "worker_ms_per_file": _worker_ms(store_root, request.partition_key),
            "checks": {e.check_name: e.passed for e in evaluations},
            "failed_checks": {e.check_name: {k: v.value for k, v in e.metadata.items()}
                              for e in evaluations if not e.passed},
            "step_failures": [
                f"{e.step_key}: {e.event_specific_data.error.message.strip()[:300]}"
                for e in run.all_events if e.event_type == DagsterEventType.STEP_FAILURE],
        })

    instance.dispose()
    return {
        "mode": "in-process",
        "copy_into_inbox_seconds": round(copy_seconds, 2),
        "wall_seconds": round(wall, 2),
        "sensor_tick_seconds": round(tick_seconds, 3),
        **cpu_figures,
        **sampler.figures(),
        "rusage_after": rusage_mib(),
        "runs": runs,
        **store_outcome(store_root, {shas[c]: c.name for c in clips},
                        [r["partition"] for r in runs], load_policy(policy_copy)),
        "left_in_inbox": sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")),
    }


def store_outcome(store_root: Path, clips: dict[str, str], partitions: list[str],
                  rules: Any) -> dict[str, Any]:
    """What the store says about the clips (content id -> clip name) after the runs: catalog
    rows, quarantine records, what the web rendition decided in `partitions`, and the clips
    catalogued `ok` whose rendition is missing (a transcode whose output is not in the store;
    a clip that fits is its own rendition)."""
    from media_assets.records.catalog import read_arrivals
    from media_assets.records.layout import spec_output_key
    from media_assets.records.manifest import all_quarantine_records
    from media_assets.storage import LocalObjectStore

    store = LocalObjectStore(store_root)
    rows = [r for r in read_arrivals(store).iter_rows(named=True) if r["content_id"] in clips]
    quarantined = [{k: r.get(k) for k in ("source_name", "reason", "stage", "detail")}
                   for r in all_quarantine_records(store)]
    plans: dict[str, dict[str, Any]] = {}  # what web_rendition decided per clip
    for key in partitions:
        path = store_root / "batches" / "results" / key / "web_rendition_plans.json"
        if path.is_file():
            plans.update(json.loads(path.read_text()))
    spec = rules.video.rendition
    missing = [name for cid, name in clips.items()
               if any(r["content_id"] == cid and r["status"] == "ok" for r in rows)
               and (cid not in plans or (plans[cid].get("action") == "transcode"
                                         and not store.exists(spec_output_key(spec, cid))))]
    return {
        "catalogued_ok": sum(r["status"] == "ok" for r in rows),
        "catalogued_quarantined": sum(r["status"] == "quarantined" for r in rows),
        "not_catalogued": sorted(set(clips.values())
                                 - {clips[r["content_id"]] for r in rows}),
        "quarantine_records": quarantined,
        "rendition_actions": sorted({p.get("action", "?") for p in plans.values()}),
        "rendition_sizes": sorted({f"{p.get('width')}x{p.get('height')}@{p.get('fps')}"
                                   for p in plans.values()}),
        "renditions_missing": sorted(missing),
    }


# ---------------------------------------------------------------------------------------------
# 2c. The pipeline under `dagster dev`, started as ingest_benchmark.py starts it


def run_pipeline_dev(args: argparse.Namespace, clips: list[Path], shas: dict[Path, str],
                     run_dir: Path) -> dict[str, Any]:
    """`dagster dev` on a temp SQLite instance (with `make dev`'s pool limits) and temp inbox,
    store and policy copy (batching as the policy has it). Once the inbox sensor has ticked,
    the clips are renamed into the inbox together and timed until each has a catalog row or a
    quarantine record; the runs and their steps are read from the instance after the stop."""
    from ingest_benchmark import (
        DagsterDev,
        Instance,
        StoreWatch,
        analyse_runs,
        dev_env,
        free_port,
        measure_flood,
    )
    from scale import GraphQL, wait_for_tick

    from media_assets.core.policy import load_policy
    from media_assets.records.layout import spec_output_key

    inbox, store_root, policy_copy = run_dir / "inbox", run_dir / "store", run_dir / "policy.yaml"
    for folder in (inbox, store_root):
        folder.mkdir(parents=True)
    write_policy(args.policy, policy_copy, args.rendition_mode)
    rules = load_policy(policy_copy)
    spec = rules.video.rendition
    instance = Instance("sqlite", run_dir / "dagster_home", "", "")
    dev = DagsterDev(run_dir, dev_env(instance, inbox, store_root, policy_copy), free_port())
    # measure_flood's "thumbnails" are the web renditions' outputs here (transcodes only).
    watch = StoreWatch(store_root, lambda cid: spec_output_key(spec, cid))
    result: dict[str, Any] = {
        "mode": "dev", "dagster_log": str(dev.log_path), "dagster_home": str(instance.home),
        "pool_limits": instance.pool_limits, "batching": rules.batching.model_dump(),
    }
    sampler: RoleSampler | None = None
    try:
        print(f"starting dagster dev on port {dev.port} (log: {dev.log_path}) ...", flush=True)
        started_at = time.time()
        dev.start()
        result["startup_s"] = round(dev.wait_ready(args.start_timeout), 1)
        # The daemon is up and the sensor running: the drop is not clocked against start-up.
        if wait_for_tick(GraphQL(dev.port), "inbox_sensor", started_at - 60,
                         args.start_timeout) is None:
            raise TimeoutError(f"no inbox_sensor tick within {args.start_timeout:.0f} s")
        result["first_tick_after_s"] = round(time.time() - started_at, 1)
        print(f"  up after {result['startup_s']} s, first sensor tick after "
              f"{result['first_tick_after_s']} s", flush=True)
        sampler = RoleSampler(dev.proc.pid)
        sampler.start()
        cpu = CpuWatch(tree_root=dev.proc.pid)
        timeout = args.flood_timeout or 600 + 3 * args.clips * args.seconds
        print(f"dropping {len(clips)} clips at once ...", flush=True)
        flood = measure_flood(clips, shas, inbox, watch, timeout, "at-once")
        flood["first_rendition_s"] = flood.pop("first_thumbnail_s")
        flood["all_renditions_s"] = flood.pop("all_thumbnails_s")
        result.update(wall_seconds=flood["wall_seconds"], flood=flood, **cpu.figures())
    finally:
        if sampler is not None:
            sampler.stop()
            result["memory"] = sampler.peaks()
        print("stopping dagster dev ...", flush=True)
        dev.stop()
    dropped_at = result["flood"]["dropped_at"]
    runs = analyse_runs(instance.home, store_root, dropped_at)
    details = run_details(instance)
    for run in runs["runs"]:
        run.update(details.get(run["partition"], {}))
        run["worker_ms_per_file"] = _worker_ms(store_root, run["partition"]) \
            if run["partition"] else {}
    result["runs"] = runs
    result.update(store_outcome(store_root, {shas[c]: c.name for c in clips},
                                [r["partition"] for r in runs["runs"] if r["partition"]],
                                rules))
    result["left_in_inbox"] = sorted(p.name for p in inbox.iterdir()
                                     if not p.name.startswith("."))
    return result


def run_details(instance: Any) -> dict[str, dict[str, Any]]:
    """Per partition: its run's check results and step failures, from the instance's events."""
    from dagster import DagsterEventType

    check, failure = DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.STEP_FAILURE
    found: dict[str, dict[str, Any]] = {}
    opened = instance.open()
    try:
        for record in opened.get_run_records():
            run = record.dagster_run
            checks: dict[str, bool] = {}
            failures: list[str] = []
            for entry in opened.all_logs(run.run_id, of_type={check, failure}):
                event = entry.dagster_event
                if event is None:
                    continue
                if event.event_type == check:
                    evaluation = event.asset_check_evaluation_data
                    checks[evaluation.check_name] = evaluation.passed
                else:
                    message = event.step_failure_data.error
                    failures.append(f"{event.step_key}: "
                                    f"{(message.message if message else '?').strip()[:300]}")
            found[run.tags.get("dagster/partition", run.run_id)] = {
                "checks": checks, "step_failures": failures}
    finally:
        opened.dispose()
    return found


# ---------------------------------------------------------------------------------------------
# 3. Report


def _throughput(phase: dict[str, Any], clips: int, seconds: float) -> None:
    phase["clips_per_second"] = round(clips / phase["wall_seconds"], 4)
    phase["media_seconds_per_wall_second"] = round(seconds / phase["wall_seconds"], 3)


def dev_report(data: dict[str, Any]) -> list[str]:
    """The pipeline's lines under `dagster dev` (after the bare baseline's)."""
    from ingest_benchmark import _goal, memory_lines

    pipe = data["pipeline"]
    lines = []
    flood = pipe.get("flood")
    if flood:
        lines.append(f"  pipeline   {pipe['wall_seconds']:8.2f} s wall (dagster dev, renamed in "
                     f"at once)  {pipe['clips_per_second']:.3f} clips/s  "
                     f"{pipe['media_seconds_per_wall_second']:6.3f} media-s per wall-s\n"
                     f"    CPU busy {pipe['cpu_busy']:.0%} ({pipe['cpu_seconds']} CPU-s ours "
                     f"and dagster dev's, {pipe['other_processes_cpu_seconds']} CPU-s other "
                     "processes)")
    if "ratio" in data:
        lines.append(f"  ratio pipeline/bare  {data['ratio']:.3f}"
                     f"{_goal(data['ratio'], RATIO_GOAL, True)}  (media-s per wall-s)   "
                     f"overhead {data['overhead_s_per_clip']:.2f} s per clip")
    if flood:
        lines.append(f"  first web rendition after {flood['first_rendition_s']} s, all after "
                     f"{flood['all_renditions_s']} s (transcodes only); catalogued ok "
                     f"{pipe['catalogued_ok']}, quarantined {pipe['catalogued_quarantined']}, "
                     f"not catalogued {len(pipe['not_catalogued'])}, renditions missing "
                     f"{len(pipe['renditions_missing'])}, left in inbox "
                     f"{len(pipe['left_in_inbox'])}; renditions {pipe['rendition_actions']} "
                     f"{pipe['rendition_sizes']}")
    lines += memory_lines(pipe.get("memory"))
    runs = pipe.get("runs") or {}
    summary = runs.get("summary")
    if summary:
        batching = pipe["batching"]
        sizes = [r["files"] for r in runs["runs"] if r["in_flood"]]
        lines.append(f"  sensor: {summary['runs']} runs (batches) for the drop, clips per batch "
                     f"{sizes}, {len(summary['failed'])} failed; target_batch_seconds "
                     f"{batching.get('target_batch_seconds')}, pool limits "
                     f"{pipe['pool_limits']}; first run created "
                     f"{summary['first_run_created_after_drop_s']} s and first step "
                     f"{summary['first_step_after_drop_s']} s after the drop")
        lines.append(f"  median per run: queued {summary['median_queued_s']} s, launch->start "
                     f"{summary['median_launch_to_start_s']} s, start->first step "
                     f"{summary['median_start_to_first_step_s']} s, total "
                     f"{summary['median_total_s']} s")
        for run in runs["runs"]:
            lines.append(f"  run {run['partition']} {run['job']} ({run['files']} clips, closed "
                         f"'{run['closed_because']}'): {run['status']}, queued "
                         f"{run['queued_s']} s, total {run['total_s']} s")
            lines.append("    steps (s): " + ", ".join(f"{k} {v}"
                                                       for k, v in run["steps_s"].items()))
            lines.append("    per clip in the workers (median ms): " + ", ".join(
                f"{k} {v['median_ms']}" for k, v in run.get("worker_ms_per_file", {}).items()))
            failed = [k for k, ok in run.get("checks", {}).items() if not ok]
            lines.append(f"    checks: {len(run.get('checks', {}))} evaluated, failed: "
                         f"{failed or 'none'}")
            for failure in run.get("step_failures", []):
                lines.append(f"    STEP FAILURE {failure}")
    elif "error" in runs:
        lines.append(f"  run analysis failed: {runs['error']}")
    for record in pipe.get("quarantine_records", []):
        lines.append(f"  QUARANTINED {record['source_name']}: {record['reason']} at "
                     f"{record['stage']} ({record['detail']})")
    if "error" in pipe:
        lines.append(f"  PIPELINE FAILED: {pipe['error']}")
    return lines


def report(data: dict[str, Any]) -> str:
    bare, pipe = data.get("bare"), data.get("pipeline", {})
    lines = [f"video benchmark: {data['clips']} clips x {data['seconds_each']:g} s "
             f"({data['media_seconds']:.1f} media-s, {data['input_mib']} MiB), "
             f"{data['width']}x{data['height']} @ {data['fps']} fps, H.264 + AAC stereo MP4, "
             f"rendition mode {data['rendition_mode']}, pipeline {data['pipeline_mode']}, "
             f"{data['cpus']} CPUs, commit {data['commit']}, {data['started_at']}"]

    def phase_line(label: str, phase: dict[str, Any]) -> str:
        return (f"  {label:<10} {phase['wall_seconds']:8.2f} s wall  "
                f"{phase['clips_per_second']:.3f} clips/s  "
                f"{phase['media_seconds_per_wall_second']:6.3f} media-s per wall-s\n"
                f"    peak RSS {phase['peak_rss_tree_mib']} MiB process tree (PSS "
                f"{phase['peak_pss_tree_mib']}), {phase['peak_rss_single_mib']} MiB largest "
                f"process, {phase['max_processes']} processes; CPU busy {phase['cpu_busy']:.0%}"
                f" ({phase['cpu_seconds']} CPU-s ours, {phase['other_processes_cpu_seconds']} "
                "CPU-s other processes)")

    if bare:
        lines.append(phase_line("bare PyAV", bare))
        lines.append(f"    {bare['workers']} workers, median {bare['per_clip_s_median']} s per "
                     f"clip, worker ru_maxrss {bare['peak_rss_workers_rusage_mib']} MiB, "
                     f"actions {bare['actions']}, output {bare['output']}, "
                     f"errors {bare['error_count']}")
    if pipe.get("mode") == "dev":
        lines.extend(dev_report(data))
        return "\n".join(lines)
    if "wall_seconds" in pipe:
        lines.append(phase_line("pipeline", pipe))
    if "ratio" in data:
        lines.append(f"  ratio pipeline/bare  {data['ratio']:.3f}  (media-s per wall-s)   "
                     f"overhead {data['overhead_s_per_clip']:.2f} s per clip")
    if "wall_seconds" in pipe:
        lines.append(f"  pipeline: sensor tick {pipe['sensor_tick_seconds']} s, "
                     f"{len(pipe['runs'])} run(s), catalogued ok {pipe['catalogued_ok']}, "
                     f"quarantined {pipe['catalogued_quarantined']}, not catalogued "
                     f"{len(pipe['not_catalogued'])}, left in inbox "
                     f"{len(pipe['left_in_inbox'])}; renditions {pipe['rendition_actions']} "
                     f"{pipe['rendition_sizes']}")
        for run in pipe["runs"]:
            lines.append(f"  run {run['partition']} {run['job']} ({run['files']} files, "
                         f"closed '{run['closed_because']}'): "
                         f"{'success' if run['success'] else 'FAILED'}, "
                         f"{run['wall_seconds']} s")
            lines.append("    steps (s): " + ", ".join(f"{k} {v}"
                                                       for k, v in run["steps_s"].items()))
            lines.append("    per file in the workers (median ms): " + ", ".join(
                f"{k} {v['median_ms']}" for k, v in run["worker_ms_per_file"].items()))
            failed = [k for k, ok in run["checks"].items() if not ok]
            lines.append(f"    checks: {len(run['checks'])} evaluated, failed: "
                         f"{failed or 'none'}")
            for failure in run["step_failures"]:
                lines.append(f"    STEP FAILURE {failure}")
        for record in pipe["quarantine_records"]:
            lines.append(f"  QUARANTINED {record['source_name']}: {record['reason']} at "
                         f"{record['stage']} ({record['detail']})")
    if bare or "wall_seconds" in pipe:
        lines.append(f"  getrusage ru_maxrss (maxima over the invocation so far): after bare "
                     f"{(bare or {}).get('rusage_after')}, after pipeline "
                     f"{pipe.get('rusage_after')}")
    if "error" in pipe:
        lines.append(f"  PIPELINE FAILED: {pipe['error']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", choices=tuple(DEFAULT_CLIPS), default="dev",
                        help="dev (default): `dagster dev` on temp folders; in-process: the "
                             "sensor and each run's job in this process, on an ephemeral "
                             "instance")
    parser.add_argument("--clips", type=int, default=None,
                        help="number of clips (dev 20, in-process 10)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds per clip (dev 30, in-process 20)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "media_assets_video_bench",
                        help="cache of generated clips and scratch folders")
    parser.add_argument("--policy", type=Path, default=REPO / "policy.yaml")
    parser.add_argument("--rendition-mode", choices=("when_needed", "always"),
                        default="when_needed",
                        help="when_needed (the policy's default) skips clips that already fit "
                             "(H.264/AAC MP4, long edge <= 720, <= 30 fps); both sides follow it")
    parser.add_argument("--start-timeout", type=float, default=180.0,
                        help="dev: seconds for the webserver to answer and the sensor to tick")
    parser.add_argument("--flood-timeout", type=float, default=0.0,
                        help="dev: seconds from the drop; 0 = 600 + 3 per media-second")
    parser.add_argument("--skip-bare", action="store_true")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the outputs and the store")
    args = parser.parse_args(argv)
    clips, seconds = DEFAULT_CLIPS[args.pipeline]
    args.clips = clips if args.clips is None else args.clips
    args.seconds = seconds if args.seconds is None else args.seconds
    return args


def measure_pipeline(args: argparse.Namespace, clips: list[Path], shas: dict[Path, str],
                     run_dir: Path, total_bytes: int) -> dict[str, Any]:
    """The pipeline side in the chosen mode; a failure is recorded, not raised."""
    where = ("under dagster dev" if args.pipeline == "dev"
             else "sensor + job in-process")
    print(f"pipeline over {len(clips)} clips ({where}) ...", flush=True)
    try:
        if args.pipeline == "dev":
            return run_pipeline_dev(args, clips, shas, run_dir)
        return run_pipeline(clips, shas, run_dir, args.policy, args.rendition_mode,
                            total_bytes)
    except (TimeoutError, RuntimeError, OSError) as exc:
        print(f"pipeline measurement failed: {exc}", flush=True)
        return {"mode": args.pipeline, "error": f"{type(exc).__name__}: {exc}"}


def _throughput_if_measured(pipe: dict[str, Any], clips: int, seconds: float) -> None:
    if "wall_seconds" in pipe:
        _throughput(pipe, clips, seconds)


def pipeline_succeeded(pipe: dict[str, Any]) -> bool:
    """Every run succeeded and every clip has a catalog row (the mode's own records)."""
    if "error" in pipe:
        return False
    if pipe.get("mode") == "dev":
        summary = (pipe.get("runs") or {}).get("summary") or {}
        return bool(summary.get("runs")) and not summary.get("failed") \
            and not pipe["not_catalogued"]
    return all(r["success"] for r in pipe["runs"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.clips < 1 or args.seconds <= 0 or args.width < 2 or args.height < 2:
        raise SystemExit("--clips, --seconds, --width and --height must be positive")
    if args.width % 2 or args.height % 2:
        raise SystemExit("--width and --height must be even (yuv420p)")
    # Imported here, not at module level: the spawned bare workers import this module again.
    from ingest_benchmark import git_commit, signals_for_dagster_dev

    signals_for_dagster_dev()  # SIGTERM/SIGINT run the finally blocks that stop dagster dev
    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    workdir = args.workdir.resolve()
    clips = ensure_clips(workdir / "files", args)
    shas = {p: sha256_of(p) for p in clips}
    if len(set(shas.values())) != len(clips):
        print("warning: some clips are byte-identical (the pipeline stores them once)",
              flush=True)
    seconds = sum(media_seconds(p) for p in clips)
    total_bytes = sum(p.stat().st_size for p in clips)
    long_edge = max(args.width, args.height)
    if args.rendition_mode == "when_needed" and long_edge <= LONG_EDGE and args.fps <= MAX_FPS:
        print(f"note: {args.width}x{args.height} @ {args.fps} fps already fits the rendition "
              "spec: under when_needed neither side transcodes (pass --rendition-mode always)",
              flush=True)
    data: dict[str, Any] = {
        "started_at": started_at.isoformat(timespec="seconds"), "clips": args.clips,
        "seconds_each": args.seconds, "media_seconds": round(seconds, 2),
        "width": args.width, "height": args.height, "fps": args.fps,
        "input_mib": mib(total_bytes), "rendition_mode": args.rendition_mode,
        "pipeline_mode": args.pipeline, "commit": git_commit(),
        "cpus": os.cpu_count(), "policy": str(args.policy), "workdir": str(workdir),
    }
    run_dir = workdir / f"run-{stamp}"
    run_dir.mkdir(parents=True)
    exit_code = 0
    try:
        if not args.skip_bare:
            print(f"bare baseline over {len(clips)} clips ({os.cpu_count()} processes) ...",
                  flush=True)
            os.sync()
            data["bare"] = run_bare(clips, run_dir / "bare-out", args.rendition_mode)
            _throughput(data["bare"], len(clips), seconds)
            print(f"  {data['bare']['media_seconds_per_wall_second']} media-s per wall-s",
                  flush=True)
        if not args.skip_pipeline:
            data["pipeline"] = measure_pipeline(args, clips, shas, run_dir, total_bytes)
            _throughput_if_measured(data["pipeline"], len(clips), seconds)
            if not pipeline_succeeded(data["pipeline"]):
                exit_code = 1
        bare, pipe = data.get("bare"), data.get("pipeline", {})
        if bare and "wall_seconds" in pipe:
            data["ratio"] = round(pipe["media_seconds_per_wall_second"]
                                  / bare["media_seconds_per_wall_second"], 3)
            data["overhead_s_per_clip"] = round(
                (pipe["wall_seconds"] - bare["wall_seconds"]) / len(clips), 3)
    finally:
        if not args.keep:
            for name in ("bare-out", "store", "inbox", "dagster_home"):
                shutil.rmtree(run_dir / name, ignore_errors=True)
    save_and_report(data, OUT_DIR, f"video-{stamp}", report)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
