"""Replay every input the fuzzers ever found (`media_assets_tests/regressions/<target>/`)
through the same harness, each in a decode worker under a time limit: only `Rejected` may
come out, never another exception, a crash or a hang. And a short bounded fuzzing run."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.harness import TARGETS
from media_assets.codec.pool import WorkerPool

ROOT = Path(__file__).resolve().parents[1]
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
CASES = sorted(p for p in REGRESSIONS.glob("*/*") if p.is_file())


def replay(target: str, path: str) -> str:
    TARGETS[target](Path(path).read_bytes())
    return "ok"


def test_the_regression_folder_holds_inputs_for_known_targets():
    assert CASES, "no regression inputs"
    assert {p.parent.name for p in CASES} <= set(TARGETS)


def test_every_regression_input_is_handled_within_its_time_limit():
    with WorkerPool(2, 2048) as pool:
        outcomes = pool.run([(str(p.relative_to(REGRESSIONS)), replay,
                              (p.parent.name, str(p))) for p in CASES], timeout_seconds=60,
                            cpu_seconds=120)
    failed = {name: str(o.error) for name, o in outcomes.items() if not o.ok}
    assert failed == {}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (pip install -e '.[dev]')")
@pytest.mark.parametrize(("target", "seconds"), [("structure", 20), ("pipeline", 25)])
def test_a_bounded_fuzzing_run_finds_nothing(tmp_path, target, seconds):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "fuzz", "--target", target, "--seconds", str(seconds),
         "--findings", str(tmp_path / "findings")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 240)
    findings = sorted(p.name for p in (tmp_path / "findings").glob("*"))
    assert done.returncode == 0 and findings == [], (findings, done.stderr[-3000:])
    assert "Done" in done.stderr
