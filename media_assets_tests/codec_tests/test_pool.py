"""Per-file isolation: a hang or a crash costs that file only, never the batch."""

import os
import time

import pytest

from media_assets.codec.pool import WorkerPool
from media_assets.core.errors import Rejected, TransientError

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
