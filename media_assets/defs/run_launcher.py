"""The instance's run launcher: Dagster's default one, plus a worker health check.

With it, run monitoring (`run_monitoring` in dagster.yaml) ends a run whose processes all
died with their machine or `dagster dev`, instead of leaving it STARTED and holding its
lane's queue slot: the run is marked failed, and Dagster's run retries (then the inbox
sensor's healing) run its batch again. The check itself is `operations/run_liveness.py`."""

from __future__ import annotations

import json

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from media_assets.operations.run_liveness import run_worker_liveness

STARTED_PROCESS = "Started process for run"  # the run worker's first engine event names its pid


class WatchedRunLauncher(DefaultRunLauncher):
    """Launches runs on the code server like the default launcher, and tells run monitoring
    whether a run's worker still lives (on this machine; elsewhere `max_runtime` applies)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid, logged_at = self._worker_pid(run)
        grpc_info = json.loads(run.tags.get(GRPC_INFO_TAG) or "{}")
        liveness = run_worker_liveness(pid, logged_at, grpc_info.get("host"))
        if liveness.alive is False:
            return CheckRunHealthResult(WorkerStatus.FAILED, liveness.why)
        # Alive, or nobody here can tell: run monitoring fails anything not RUNNING, so an
        # unknown worker counts as running until its max_runtime tag says otherwise.
        return CheckRunHealthResult(WorkerStatus.RUNNING, liveness.why)

    def _worker_pid(self, run: DagsterRun) -> tuple[int | None, float | None]:
        """The pid the run worker logged at its start, and when (the newest such event)."""
        found: tuple[int | None, float | None] = (None, None)
        for record in self._instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
            event = record.dagster_event
            if event is None or not (event.message or "").startswith(STARTED_PROCESS):
                continue
            pid = event.engine_event_data.metadata.get("pid")
            if pid is not None and str(pid.value).isdigit():
                found = (int(str(pid.value)), record.timestamp)
        return found
