"""A real `dagster dev` for end-to-end tests: its own DAGSTER_HOME, inbox and store, a free
loopback port, GraphQL helpers, and a teardown that leaves no process behind."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNS_QUERY = ('{ runsOrError { ... on Runs { results { runId status jobName startTime '
              'endTime tags { key value } } } } }')


@dataclass(frozen=True)
class DagsterDev:
    root: Path
    port: int
    pid: int = 0  # the `dagster dev` parent, leader of its process group

    def crash(self) -> None:
        """kill -9 every process of this `dagster dev` at once (a lost machine)."""
        os.killpg(self.pid, signal.SIGKILL)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def store_root(self) -> Path:
        return self.root / "store"

    def graphql(self, query: str) -> dict:
        request = urllib.request.Request(
            f"{self.base_url}/graphql", data=json.dumps({"query": query}).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["data"]

    def runs(self) -> list[dict]:
        found = self.graphql(RUNS_QUERY)["runsOrError"]["results"]
        return [{**r, "tags": {t["key"]: t["value"] for t in r["tags"]}} for r in found]

    def run_status(self, run_id: str) -> str:
        query = f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}'
        return self.graphql(query)["runOrError"]["status"]

    def wait_until_ready(self, timeout: float = 90) -> None:
        def ready():
            try:
                return self.graphql("{ version }")
            except OSError:
                return None

        wait_for(ready, timeout, "the webserver")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def dagster_dev(root: Path, policy: Path = REPO / "policy.yaml") -> Iterator[DagsterDev]:
    """Start `dagster dev` (webserver + daemon) for the repo's code location under `root`;
    again on the same `root`, it restarts on the same instance, inbox and store."""
    home, port = root / "dagster_home", free_port()
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "MEDIA_ASSETS_INBOX": str(root / "inbox"),
           "MEDIA_ASSETS_STORE": str(root / "store"), "MEDIA_ASSETS_POLICY": str(policy)}
    dagster = Path(sys.executable).with_name("dagster")
    with (root / "dev.log").open("ab") as log:
        process = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield DagsterDev(root, port, process.pid)
        finally:
            process.send_signal(signal.SIGINT)  # to the parent only: the group hangs on SIGINT
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
