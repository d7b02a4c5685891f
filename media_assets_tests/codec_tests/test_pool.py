"""Per-file isolation: a hang or a crash costs that file only, never the batch; workers never
outlive their pool's process; one machine works on at most one file per core, whatever the
number of runs."""

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from media_assets.codec.pool import WorkerPool
from media_assets.codec.slots import SLOTS_DIR_ENV
from media_assets.codec.worker import timed_call
from media_assets.core.errors import Rejected, TransientError

REPO = Path(__file__).resolve().parents[2]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="PR_SET_PDEATHSIG and /proc are Linux")

FLAKY_MARK = "flaky-attempts"


def run_isolated(tasks, *, workers: int, timeout_seconds: float, memory_mb: int):
    with WorkerPool(workers, memory_mb) as pool:
        return pool.run(tasks, timeout_seconds)


def double(x: int) -> int:
    return 2 * x


def hang(_: int) -> None:
    time.sleep(60)


def crash(_: int) -> None:
    os._exit(3)


def reject(_: int) -> None:
    raise Rejected("corrupt", "bad bytes")


def hog_memory(_: int) -> bytes:
    return b"x" * (2 * 1024**3)


def always_transient(_: int) -> None:
    raise TransientError("storage unreachable")


def flaky(path: str) -> str:
    with open(path, "a") as handle:
        handle.write("x")
    with open(path) as handle:
        if len(handle.read()) < 2:
            raise TransientError("storage hiccup")
    return "ok"


def test_results_are_collected_per_key():
    outcomes = run_isolated([(i, double, (i,)) for i in range(4)], workers=2,
                            timeout_seconds=30, memory_mb=0)
    assert {k: o.value for k, o in outcomes.items()} == {0: 0, 1: 2, 2: 4, 3: 6}


def test_a_hanging_or_crashing_file_is_rejected_and_the_others_complete():
    tasks = [("ok", double, (1,)), ("hang", hang, (0,)), ("crash", crash, (0,)),
             ("bad", reject, (0,))]
    started = time.monotonic()
    outcomes = run_isolated(tasks, workers=2, timeout_seconds=3, memory_mb=0)
    assert time.monotonic() - started < 30
    assert outcomes["ok"].value == 2
    assert outcomes["hang"].error.reason == "timeout"
    assert outcomes["crash"].error.reason == "worker_crashed"
    assert outcomes["bad"].error.reason == "corrupt"


def unreadable(_: int) -> None:
    raise OSError("cannot identify image file")  # what Pillow raises for garbage


def test_a_decoders_os_error_is_the_files_not_the_machines():
    outcomes = run_isolated([("garbage", unreadable, (0,))], workers=1, timeout_seconds=30,
                            memory_mb=0)
    assert outcomes["garbage"].error.reason == "decode_error"


def test_the_memory_cap_stops_a_runaway_file():
    outcomes = run_isolated([("hog", hog_memory, (0,)), ("ok", double, (2,))], workers=1,
                            timeout_seconds=30, memory_mb=512)
    assert isinstance(outcomes["hog"].error, Rejected)
    assert outcomes["hog"].error.reason in {"out_of_memory", "worker_crashed"}
    assert outcomes["ok"].value == 4


def spin(_: int) -> None:
    while True:  # pure CPU, never returns
        pass


def test_the_cpu_time_limit_ends_a_spinning_worker_long_before_its_time_limit():
    started = time.monotonic()
    with WorkerPool(1, 0) as pool:
        outcomes = pool.run([("spin", spin, (0,)), ("ok", double, (3,))], timeout_seconds=60,
                            cpu_seconds=1)
        # the limit is per file: a worker that spent CPU before gets its full allowance
        again = pool.run([(i, double, (i,)) for i in range(3)], timeout_seconds=60,
                         cpu_seconds=1)
    assert time.monotonic() - started < 20
    assert outcomes["spin"].error.reason == "cpu_time_limit"
    assert outcomes["ok"].value == 6
    assert {k: o.value for k, o in again.items()} == {0: 0, 1: 2, 2: 4}


# --- transient versus poison: a death the machine may have caused is retried alone ---------

def killed_the_first_time(marker: str) -> int:
    """A good file whose first worker is killed from outside (as the OOM killer does)."""
    if not Path(marker).exists():
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def sleep_past_the_limit(_: int) -> None:
    time.sleep(60)  # waiting, not decoding: what a starved or stalled file looks like


def test_a_file_whose_worker_is_killed_once_passes_when_retried_alone_in_a_fresh_worker(
        tmp_path):
    marker = tmp_path / "first-worker"
    tasks = [("victim", killed_the_first_time, (str(marker),)),
             *((i, double, (i,)) for i in range(6))]
    outcomes = run_isolated(tasks, workers=2, timeout_seconds=30, memory_mb=0)
    victim = outcomes["victim"]
    assert victim.ok and victim.retried == "worker_crashed"
    assert victim.value != int(marker.read_text())  # another worker process
    assert all(outcomes[i].value == 2 * i and outcomes[i].retried is None for i in range(6))


def test_a_file_that_crashes_its_worker_alone_too_is_judged_a_crash():
    outcomes = run_isolated([("poison", crash, (0,)), ("ok", double, (1,))], workers=2,
                            timeout_seconds=30, memory_mb=0)
    assert outcomes["poison"].error.reason == "worker_crashed"
    assert outcomes["poison"].retried == "worker_crashed"  # the reason now means "by itself"
    assert outcomes["ok"].value == 2


def test_a_timeout_is_retried_alone_only_when_the_file_was_starved_of_cpu():
    started = time.monotonic()
    outcomes = run_isolated([("waits", sleep_past_the_limit, (0,)), ("burns", spin, (0,))],
                            workers=2, timeout_seconds=1.5, memory_mb=0)
    assert time.monotonic() - started < 20
    waits, burns = outcomes["waits"], outcomes["burns"]
    assert (waits.error.reason, waits.retried) == ("timeout", "timeout")
    assert waits.cpu_seconds is not None and waits.cpu_seconds < 0.5
    assert (burns.error.reason, burns.retried) == ("timeout", None)  # its own doing
    assert burns.cpu_seconds is not None and burns.cpu_seconds > 0.75
    assert "CPU used" in str(burns.error)


def test_a_file_over_its_cpu_allowance_is_never_retried():
    with WorkerPool(1, 0) as pool:
        outcomes = pool.run([("spin", spin, (0,))], timeout_seconds=60, cpu_seconds=1)
    assert (outcomes["spin"].error.reason, outcomes["spin"].retried) == ("cpu_time_limit", None)


def busy_for(seconds: float) -> int:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass
    return os.getpid()


@linux_only
def test_workers_killed_busy_idle_or_starting_cost_no_file():
    """The OOM killer does not wait for a task to run: pebble aborts a whole pool when a
    worker dies while no task runs on it; those files are scheduled again on a fresh pool."""
    killed: list[int] = []

    def kill_workers() -> None:
        deadline = time.monotonic() + 20
        while len(killed) < 4 and time.monotonic() < deadline:
            workers = sorted(spawned_children(os.getpid()))
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
                time.sleep(0.4)
            else:
                time.sleep(0.02)

    killer = threading.Thread(target=kill_workers)
    killer.start()
    outcomes = run_isolated([(i, busy_for, (0.05,)) for i in range(60)], workers=2,
                            timeout_seconds=30, memory_mb=0)
    killer.join()
    assert len(killed) >= 3
    assert all(outcome.ok for outcome in outcomes.values()), {
        k: o.error for k, o in outcomes.items() if not o.ok}


def test_transient_errors_are_retried_a_bounded_number_of_times(tmp_path):
    marker = tmp_path / FLAKY_MARK
    outcomes = run_isolated([("f", flaky, (str(marker),))], workers=1, timeout_seconds=30,
                            memory_mb=0)
    assert outcomes["f"].value == "ok"
    assert marker.read_text() == "xx"


def test_a_persistent_transient_error_fails_the_caller_instead_of_blaming_the_file():
    with pytest.raises(TransientError):
        run_isolated([("f", always_transient, (0,))], workers=1, timeout_seconds=30,
                     memory_mb=0)


# --- workers die with their pool's process -------------------------------------------------

def report_pid_and_wait(folder: str) -> None:
    Path(folder, str(os.getpid())).touch()
    time.sleep(120)


def worker_pid(_: int) -> int:
    return os.getpid()


def kill_self(_: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def spawned_children(parent: int) -> set[int]:
    """The multiprocessing-spawned children of `parent` (its decode workers), from /proc."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if ppid == parent and b"spawn_main" in cmdline:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie nobody has reaped yet counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


OWNER_SCRIPT = """
import sys
from media_assets.codec.pool import WorkerPool
from media_assets_tests.codec_tests.test_pool import crash, double, report_pid_and_wait
folder, respawn = sys.argv[1], sys.argv[2] == "respawn"
pool = WorkerPool(2, 0)
if respawn:  # one of the two workers crashes: pebble starts a replacement
    outcomes = pool.run([("crash", crash, (0,)), ("ok", double, (1,))], timeout_seconds=60)
    assert outcomes["crash"].error.reason == "worker_crashed"
pool.run([(i, report_pid_and_wait, (folder,)) for i in range(2)], timeout_seconds=600)
"""


@linux_only
@pytest.mark.parametrize("workers", ["first", "respawn"])
def test_killing_the_pools_process_ends_every_worker(tmp_path, workers):
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT, str(tmp_path), workers],
                             env={**os.environ, "PYTHONPATH": str(REPO),
                                  SLOTS_DIR_ENV: str(tmp_path / "slots")})
    try:
        assert wait_until(lambda: len(list(tmp_path.glob("[0-9]*"))) == 2, 60), \
            "the two long tasks never started"
        working = {int(p.name) for p in tmp_path.glob("[0-9]*")}
        assert spawned_children(owner.pid) == working  # every worker is busy
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    assert wait_until(lambda: not any(alive(pid) for pid in working), 5), \
        f"workers outlived their pool's process: {[p for p in working if alive(p)]}"


def test_workers_outlive_the_thread_that_first_used_the_pool():
    """PR_SET_PDEATHSIG fires when the parent *thread* ends: a step thread that started the
    pool may end while the run keeps it."""
    with WorkerPool(1, 0) as pool:
        first: dict = {}
        thread = threading.Thread(target=lambda: first.update(
            pool.run([("pid", worker_pid, (0,))], timeout_seconds=30)))
        thread.start()
        thread.join()
        time.sleep(1)
        again = pool.run([("pid", worker_pid, (0,))], timeout_seconds=30)
    assert again["pid"].value == first["pid"].value


# --- one file per core on the machine, whatever the number of pools -----------------------

@pytest.fixture
def slot_folder(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "slots"
    monkeypatch.setenv(SLOTS_DIR_ENV, str(folder))
    return folder


def record_span(folder: str, key: str, seconds: float) -> None:
    started = time.monotonic()
    time.sleep(seconds)
    Path(folder, key).write_text(f"{started} {time.monotonic()}")


def most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in events:  # at a tie an end sorts before a start: touching is not overlap
        running += change
        peak = max(peak, running)
    return peak


def test_three_pools_on_two_slots_never_work_on_more_than_two_files_at_once(
        tmp_path, slot_folder):
    spans = tmp_path / "spans"
    spans.mkdir()
    errors: list[BaseException] = []

    def one_run(run: int) -> None:
        try:
            with WorkerPool(2, 0) as pool:  # 2 = this machine's slots, as limits.workers
                outcomes = pool.run([(i, record_span, (str(spans), f"{run}-{i}", 0.3))
                                     for i in range(4)], timeout_seconds=30)
            assert all(o.ok for o in outcomes.values())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    runs = [threading.Thread(target=one_run, args=(run,)) for run in range(3)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert not errors
    found = [tuple(map(float, f.read_text().split())) for f in spans.iterdir()]
    assert len(found) == 12
    assert most_at_once(found) == 2


def test_a_busy_run_hands_the_core_to_a_waiting_run_file_by_file(tmp_path, slot_folder):
    spans = tmp_path / "spans"
    spans.mkdir()
    with WorkerPool(1, 0) as busy, WorkerPool(1, 0) as other:  # one slot
        other.run([("warm", double, (0,))], timeout_seconds=30)  # its worker is up
        thread = threading.Thread(target=busy.run, args=(
            [(i, record_span, (str(spans), f"busy-{i:02}", 0.3)) for i in range(10)], 60))
        thread.start()
        assert wait_until(lambda: any(spans.iterdir()), 30)
        other.run([("one", record_span, (str(spans), "other", 0.3))], timeout_seconds=30)
        thread.join()
    order = sorted(spans.iterdir(), key=lambda f: float(f.read_text().split()[0]))
    assert [f.name for f in order].index("other") <= 5  # not after all of the busy run's


def test_a_worker_killed_while_holding_a_slot_frees_it(slot_folder):
    with WorkerPool(1, 0, slot_wait_seconds=5) as pool:  # one slot
        died = pool.run([("die", kill_self, (0,))], timeout_seconds=30)
        with open(slot_folder / "slot-0", "rb") as slot:
            fcntl.flock(slot, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
            fcntl.flock(slot, fcntl.LOCK_UN)
        after = pool.run([("ok", double, (5,))], timeout_seconds=30)
    assert died["die"].error.reason == "worker_crashed"
    assert after["ok"].value == 10


def hold_slot(marker: str, seconds: float) -> None:
    Path(marker).touch()
    time.sleep(seconds)


def hold_slot_in_another_run(marker: Path, seconds: float) -> threading.Thread:
    def run() -> None:
        with WorkerPool(1, 0) as other:
            other.run([("hold", hold_slot, (str(marker), seconds))], timeout_seconds=60)

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_until(marker.exists, 30)
    return thread


def test_waiting_for_a_core_does_not_count_against_the_files_time_limit(tmp_path,
                                                                          slot_folder):
    holder = hold_slot_in_another_run(tmp_path / "holding", 2.5)
    started = time.monotonic()
    with WorkerPool(1, 0) as pool:
        outcomes = pool.run([("f", timed_call, (time.sleep, 0.2))], timeout_seconds=1.5)
    waited = time.monotonic() - started
    holder.join()
    assert waited > 1.5  # longer than the file's time limit, mostly behind the other run
    _, wall_ms, _ = outcomes["f"].value
    assert wall_ms < 1000  # its timings count from when it had a core


def test_a_run_starved_of_cores_fails_instead_of_quarantining_its_files(tmp_path,
                                                                         slot_folder):
    holder = hold_slot_in_another_run(tmp_path / "holding", 5)
    with WorkerPool(1, 0, slot_wait_seconds=0.3) as pool, \
            pytest.raises(TransientError, match="no free core slot"):
        pool.run([("f", double, (1,))], timeout_seconds=30)
    holder.join()


@linux_only
def test_a_pool_starts_no_more_workers_than_it_has_files():
    with WorkerPool(2, 0) as pool:
        pool.run([("one", double, (1,))], timeout_seconds=30)
        assert len(spawned_children(os.getpid())) == 1
        pool.run([(i, double, (i,)) for i in range(3)], timeout_seconds=30)
        assert len(spawned_children(os.getpid())) == 2
    assert spawned_children(os.getpid()) == set()
