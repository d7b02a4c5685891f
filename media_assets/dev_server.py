"""`make dev`'s supervisor: `dg dev` (webserver, daemon, code server) started in DAGSTER_HOME,
and stopped, all of it, within seconds of one Ctrl-C or SIGTERM.

Why a supervisor: Dagster's `dev` warns about a `dagster.yaml` in the folder it starts in
unless that folder is DAGSTER_HOME (ours sits in the repo, copied to DAGSTER_HOME by `make
dev`), so it starts there. And a SIGTERM to its process group left it running for over 20 s
(each process shuts down on its own terms). Here Ctrl-C or SIGTERM sends one SIGINT to the
`dg dev` parent, the way it shuts down cleanly, and whatever still lives after
`GRACE_SECONDS` is killed. A run killed that way is failed by run monitoring at the next
start and run again (README "After a crash")."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

GRACE_SECONDS = 7.0  # then SIGKILL: everything is gone within 10 s of the signal


def dev_command(workspace: Path, host: str, port: int) -> list[str]:
    """`dg dev` from this interpreter's environment (`dagster dev` where dg is missing)."""
    bin_dir = Path(sys.executable).parent
    dg = bin_dir / "dg"
    if dg.exists() or shutil.which("dg"):
        return [str(dg if dg.exists() else "dg"), "dev", "-w", str(workspace), "-h", host,
                "-p", str(port)]
    return [str(bin_dir / "dagster"), "dev", "-w", str(workspace), "-h", host, "-p", str(port)]


def supervise(command: list[str], cwd: Path, grace_seconds: float = GRACE_SECONDS) -> int:
    """Run `command` in its own session until it exits or we are asked to stop; then stop
    it (SIGINT, then SIGKILL to its whole process group after `grace_seconds`)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    child = subprocess.Popen(command, cwd=cwd, start_new_session=True)
    while child.poll() is None and not stop.wait(0.2):
        pass
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(grace_seconds)
    with contextlib.suppress(ProcessLookupError):  # what outlived the parent, or everything
        os.killpg(child.pid, signal.SIGKILL)
    return child.wait() if not stop.is_set() else 0


def prepare_instance() -> None:
    """Start the run-retry daemon's cursors where it would start them itself: at the end of
    the event log. On a new instance the daemon does that on its first loop and logs "No
    cursor for event type …, ignoring older events" for each: a warning a newcomer would
    wonder about at the first `make dev`. (The key names are Dagster's own, pinned with the
    release set; `test_dev_server.py` fails if they change.)"""
    from dagster import DagsterInstance
    from dagster._daemon.auto_run_reexecution.event_log_consumer import (
        DAGSTER_EVENT_TYPES,
        _create_cursor_key,
    )

    with DagsterInstance.get() as instance:
        keys = {_create_cursor_key(event_type) for event_type in DAGSTER_EVENT_TYPES}
        missing = keys - set(instance.daemon_cursor_storage.get_cursor_values(keys))
        if missing:
            end = str(instance.event_log_storage.get_maximum_record_id() or 0)
            instance.daemon_cursor_storage.set_cursor_values(dict.fromkeys(missing, end))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start `dg dev` in DAGSTER_HOME; Ctrl-C or SIGTERM stops all of it.")
    parser.add_argument("--workspace", type=Path, default=Path("workspace.yaml"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        parser.error("DAGSTER_HOME is not set (make dev sets it to .dagster_home)")
    prepare_instance()
    return supervise(dev_command(args.workspace.resolve(), args.host, args.port), Path(home))


if __name__ == "__main__":
    sys.exit(main())
