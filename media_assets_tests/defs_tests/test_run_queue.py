"""New uploads keep priority over bulk reprocessing, in Dagster's own run queue.

The runs come from the real sensors (replays released by `reprocess_quarantined`, rebuilds
asked for by a rebuild request, a new upload in the inbox); the queue is the repo's
`dagster.yaml` run_queue, driven by Dagster's `QueuedRunCoordinatorDaemon`, one iteration at
a time, with Dagster's recording `MockedRunLauncher` (a launched run stays STARTING, holding
its slot, until the test finishes it). Asserted: the order in which runs leave the queue,
never a timing."""

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEvent, DagsterEventType, DagsterInstance, build_sensor_context
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.run_coordinator import SubmitRunContext
from dagster._core.test_utils import (
    MockedRunLauncher,
    create_run_for_test,
    create_test_daemon_workspace_context,
    instance_for_test,
)
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from media_assets.definitions import defs
from media_assets.defs.maintenance import stale_derivatives_sensor
from media_assets.operations.rebuild import save_request
from media_assets.records.manifest import quarantine
from media_assets.samples import synth_photo

REPO = Path(__file__).resolve().parents[2]
ORIGIN = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("media_assets"), "__repository__")


@dataclass
class RunQueue:
    """The instance's run queue, one daemon iteration at a time; runs named by a label."""

    instance: DagsterInstance
    workspace: WorkspaceProcessContext
    daemon: QueuedRunCoordinatorDaemon
    labels: dict[str, str]

    def submit(self, label: str, requests) -> None:
        """Queue the sensor's run requests like the sensor daemon does (label-1, label-2...)."""
        for index, request in enumerate(requests, 1):
            job_name = request.job_name or "process_batch"
            run = create_run_for_test(
                self.instance, job_name=job_name,
                remote_job_origin=ORIGIN.get_job_origin(job_name),
                tags={**request.tags, "dagster/partition": request.partition_key})
            # what instance.submit_run does with it (that also wants the Python origin)
            self.instance.run_coordinator.submit_run(
                SubmitRunContext(run, self.workspace.create_request_context()))
            self.labels[run.run_id] = f"{label}-{index}"

    def step(self) -> list[str]:
        """One daemon iteration: the runs that left the queue, in order."""
        before = len(self.launcher.queue())
        list(self.daemon.run_iteration(self.workspace))
        return [self.labels[run.run_id] for run in self.launcher.queue()[before:]]

    def finish(self, *labels: str) -> None:
        by_label = {label: run_id for run_id, label in self.labels.items()}
        for label in labels:
            run = self.instance.get_run_by_id(by_label[label])
            self.instance.report_dagster_event(DagsterEvent(
                DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name), run_id=run.run_id)

    def drain(self) -> list[str]:
        """Finish each run as it starts, until the queue is empty: the order they left it."""
        order: list[str] = []
        while left := self.step():
            order += left
            self.finish(*left)
        return order

    @property
    def launcher(self) -> MockedRunLauncher:
        return self.instance.run_launcher


def run_queue(max_concurrent_runs: int | None = None):
    """An instance with the repo's run_queue config (optionally fewer run slots)."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())["run_queue"]
    if max_concurrent_runs:
        config["max_concurrent_runs"] = max_concurrent_runs
    return instance_for_test(overrides={"run_queue": config, "run_launcher": {
        "module": "dagster._core.test_utils", "class": "MockedRunLauncher"}})


@pytest.fixture
def queue(install, request):
    slots = getattr(request, "param", None)
    with (run_queue(slots) as instance,
          create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as workspace,
          QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon):
        install.instance = instance
        yield RunQueue(instance, workspace, daemon, {})


def queue_bulk_work(install, queue: RunQueue) -> None:
    """Release 5 quarantined photos (bulk_max_files 2: 3 replay runs) and ask for 2 rebuilds."""
    install.set_policy(batching={"bulk_max_files": 2})
    photo = install.root / "photo.jpg"
    for index in range(5):
        synth_photo((64, 48), seed=index).save(photo, quality=85)
        quarantine(install.store, bytes_path=photo, content_id=f"{index:064x}",
                   batch_key="20261127T120000Z-0001", source_name=f"old_{index}.jpg",
                   reason="too_many_pixels", detail="", error_class="Rejected",
                   stage="originals", run_id="earlier")
    released = defs.resolve_job_def("reprocess_quarantined").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        run_config={"ops": {"reprocess_op": {"config": {"dry_run": False}}}})
    assert released.success
    queue.submit("replay", install.tick().run_requests)

    save_request(install.store, [{"batch_key": "20261127T120000Z-0001", "asset": asset,
                                  "files": 200, "force": True}
                                 for asset in ("thumbnails", "previews")],
                 now=datetime.now(UTC), run_id="operator")
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    queue.submit("rebuild", stale_derivatives_sensor(context).run_requests)


def queue_upload(install, queue: RunQueue) -> None:
    for index in range(3):
        synth_photo((64, 48), seed=10 + index).save(install.inbox / f"new_{index}.jpg")
    install.age_inbox()
    queue.submit("upload", install.tick().run_requests)


def test_a_new_upload_leaves_the_queue_ahead_of_the_remaining_bulk_runs(install, queue):
    queue_bulk_work(install, queue)
    assert queue.step() == ["replay-1"]  # bulk work has one slot (media_assets/work limit)

    queue_upload(install, queue)
    # The running replay is never pre-empted; the upload takes a free slot at once while
    # four bulk runs queued before it keep waiting.
    assert queue.step() == ["upload-1"]
    assert queue.step() == []

    queue.finish("replay-1")
    assert queue.drain() == ["replay-2", "replay-3", "rebuild-1", "rebuild-2"]


@pytest.mark.parametrize("queue", [1], indirect=True)
def test_with_one_free_slot_the_upload_takes_it_though_bulk_runs_queued_first(install,
                                                                               queue):
    queue_bulk_work(install, queue)
    queue_upload(install, queue)
    # Queued last, left first: dagster/priority orders the queue (bulk runs carry -10).
    assert queue.step() == ["upload-1"]
    queue.finish("upload-1")
    assert queue.drain() == ["replay-1", "replay-2", "replay-3", "rebuild-1", "rebuild-2"]


def test_the_postgres_deploy_queues_runs_like_the_local_instance():
    def run_queue_of(path: str) -> dict:
        return yaml.safe_load((REPO / path).read_text())["run_queue"]

    assert run_queue_of("deploy/dagster.postgres.yaml") == run_queue_of("dagster.yaml")


@pytest.mark.parametrize("config", ["dagster.yaml", "deploy/dagster.postgres.yaml",
                                    "deploy/dagster.k8s.yaml"])
def test_a_run_whose_process_died_is_run_again_but_a_failing_step_is_not(config, tmp_path):
    """A batch's run killed by the OOM killer or a lost node would leave its files in an
    open batch (its run key is spent): Dagster's run retries run it again; failing steps
    have their own RetryPolicy, so a run that failed on them is not repeated."""
    retries = yaml.safe_load((REPO / config).read_text())["run_retries"]
    with instance_for_test(overrides={"run_retries": retries}) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False


def test_a_tenfold_spike_on_the_kubernetes_deploy_queues_instead_of_overloading(install):
    """40 batch runs at once (10x the 4 run slots) under deploy/dagster.k8s.yaml's queue."""
    from dagster import RunRequest

    from media_assets.defs.jobs import job_for_lane
    from media_assets.defs.queue import queue_tags

    k8s = yaml.safe_load((REPO / "deploy" / "dagster.k8s.yaml").read_text())
    coordinator = {**k8s["run_coordinator"], "module": "dagster._core.run_coordinator"}
    with (instance_for_test(overrides={"run_coordinator": coordinator, "run_launcher": {
              "module": "dagster._core.test_utils", "class": "MockedRunLauncher"}}) as instance,
          create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as workspace,
          QueuedRunCoordinatorDaemon(interval_seconds=1) as daemon):
        queue = RunQueue(instance, workspace, daemon, {})
        for lane, count in (("image", 30), ("av", 5), ("heavy", 5)):
            queue.submit(lane, [RunRequest(partition_key=f"20261127T120000Z-{lane}{i}",
                                           job_name=job_for_lane(lane),
                                           tags=queue_tags(lane, "upload"))
                                for i in range(count)])
        running = queue.step()
        # max_concurrent_runs 4, image lane 2, av 1, heavy 1: the other 36 wait, queued
        assert running == ["image-1", "image-2", "av-1", "heavy-1"]
        assert queue.step() == []  # nothing more starts until a slot frees
        queue.finish(*running)
        assert len(running) + len(queue.drain()) == 40  # every batch runs, none is dropped
