"""`make dev` stops, all of it, within 10 s of one Ctrl-C or SIGTERM, and starts without a
warning a newcomer must wonder about."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from media_assets.dev_server import supervise
from media_assets_tests.dagster_dev import REPO, free_port, wait_for

STUBBORN = textwrap.dedent("""
    import signal, subprocess, sys, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # a parent that will not stop...
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # ...and a child
    time.sleep(600)
""")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment holds `marker` (all of one `dagster dev`)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes() and alive(int(environ.parent.name)):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_a_process_group_that_ignores_sigint_is_killed_after_the_grace_period(tmp_path):
    marker = f"MEDIA_ASSETS_TEST_MARKER={tmp_path}"
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    supervisor = subprocess.Popen(
        [sys.executable, "-c", "import sys; from media_assets.dev_server import supervise; "
         f"sys.exit(supervise([sys.executable, {str(script)!r}], {str(tmp_path)!r}, 1.0))"],
        env={**os.environ, "MEDIA_ASSETS_TEST_MARKER": str(tmp_path)})
    wait_for(lambda: len(processes_with(marker)) == 3, 10, "the stubborn processes")
    started = time.monotonic()
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(10)
    wait_for(lambda: not processes_with(marker), 5, "every process gone")
    assert time.monotonic() - started < 5


def test_a_command_that_ends_by_itself_ends_the_supervisor_with_its_status(tmp_path):
    assert supervise([sys.executable, "-c", "raise SystemExit(3)"], tmp_path) == 3


@pytest.mark.slow
@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
def test_make_dev_starts_quietly_and_stops_within_10_seconds(tmp_path, stop_with):
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"),
           "MEDIA_ASSETS_INBOX": str(tmp_path / "inbox"),
           "MEDIA_ASSETS_STORE": str(tmp_path / "store"), "PORT": str(port)}
    log = tmp_path / "make-dev.log"
    with log.open("wb") as out:
        make = subprocess.Popen(["make", "-s", "dev"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    return True
            except OSError:
                return False

        wait_for(ready, 120, "the UI")
        time.sleep(3)  # the daemon's first loop
        marker = f"DAGSTER_HOME={tmp_path / 'home'}"
        assert processes_with(marker)
        started = time.monotonic()
        # Ctrl-C in a terminal signals the whole foreground group; so does a service manager
        os.killpg(make.pid, stop_with)
        wait_for(lambda: not processes_with(marker), 10, "every process of make dev gone",
                 interval=0.2)
        assert time.monotonic() - started <= 10
    finally:
        for pid in processes_with(f"DAGSTER_HOME={tmp_path / 'home'}"):
            os.kill(pid, signal.SIGKILL)
    # Python's warnings (Beta, Preview, superseded commands), Dagster's own start-up warnings
    # and codec libraries' (x265 while the samples are made); the runs' own log lines
    # (sample files quarantined on purpose) are not these.
    startup = [line for line in log.read_text().splitlines()
               if "Warning:" in line or "[warning]" in line or "will not be used" in line
               or "superseded" in line or "dagster.daemon" in line and "WARNING" in line]
    assert startup == [], startup
