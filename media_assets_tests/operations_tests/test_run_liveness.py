"""Whether a run's worker still lives, from what this machine's /proc says, and the upper
bound of a batch run's wall time that ends a run nobody can watch."""

import os
import subprocess
import sys
import time
from pathlib import Path

from media_assets.core.policy import Policy
from media_assets.operations.run_limits import max_runtime_seconds
from media_assets.operations.run_liveness import process_started_at, run_worker_liveness


def test_a_worker_that_logged_its_pid_and_still_runs_is_alive():
    liveness = run_worker_liveness(os.getpid(), time.time(), "localhost")
    assert liveness.alive is True and str(os.getpid()) in liveness.why


def test_a_worker_whose_process_exited_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    logged_at = time.time()
    child.wait()
    liveness = run_worker_liveness(child.pid, logged_at, "127.0.0.1")
    assert liveness.alive is False and "gone" in liveness.why


def test_an_exited_but_unreaped_worker_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    logged_at = time.time()
    stat = Path(f"/proc/{child.pid}/stat")
    while (state := stat.read_text().rsplit(")", 1)[1].split()[0]) != "Z":
        time.sleep(0.01)
    assert state == "Z" and process_started_at(child.pid) is None
    assert run_worker_liveness(child.pid, logged_at, "localhost").alive is False
    child.wait()


def test_a_pid_reused_by_a_process_started_after_the_worker_logged_it_is_not_the_worker():
    started = process_started_at(os.getpid())
    assert started is not None
    liveness = run_worker_liveness(os.getpid(), started - 3600, "localhost")
    assert liveness.alive is False and "started after" in liveness.why


def test_a_worker_on_another_machine_or_without_a_logged_pid_cannot_be_judged_here():
    assert run_worker_liveness(os.getpid(), time.time(), "code-server.internal").alive is None
    assert run_worker_liveness(None, None, "localhost").alive is None


def test_a_batch_runs_time_bound_covers_every_file_taking_its_whole_allowance_twice():
    policy = Policy()
    one, hundred = (max_runtime_seconds(policy, "image", n) for n in (1, 100))
    per_file = policy.limits.per_file_timeout_seconds
    assert hundred > one and hundred - one >= 99 * 2 * per_file
    assert max_runtime_seconds(policy, "av", 3) > max_runtime_seconds(policy, "image", 3) \
        + 3 * 2 * policy.video.timeout_seconds
    longer = policy.model_copy(update={"limits": policy.limits.model_copy(
        update={"per_file_timeout_seconds": 10 * per_file})})
    assert max_runtime_seconds(longer, "image", 5) > max_runtime_seconds(policy, "image", 5)
