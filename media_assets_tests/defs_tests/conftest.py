"""A temporary media_assets installation: inbox, store, policy file, ephemeral instance.

By default on local folders; tests parametrised with `ON_BOTH_BACKENDS` run again with the
store and the inbox on S3 (SeaweedFS on loopback), selected by the resources' configuration
only, as in production."""

import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, build_sensor_context

from media_assets.definitions import defs
from media_assets.defs.jobs import job_for_lane
from media_assets.defs.resources import (
    AlertNotifier,
    DecodeWorkers,
    InboxResource,
    MediaStorage,
    PolicyResource,
)
from media_assets.defs.sensors import inbox_sensor
from media_assets.records.catalog import read_arrivals
from media_assets.records.manifest import load_manifest
from media_assets_tests.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server

REPO_POLICY = Path(__file__).resolve().parents[2] / "policy.yaml"
ON_BOTH_BACKENDS = pytest.mark.parametrize(
    "backend", ["local", pytest.param("s3", marks=pytest.mark.s3)], indirect=True)


@dataclass
class Installation:
    root: Path
    instance: DagsterInstance
    cursor: str | None = None
    webhook_url: str = ""
    s3: S3Server | None = None  # store and inbox on S3 under s3://BUCKET/<prefix>/
    prefix: str = ""
    inbox_options: dict[str, Any] = field(default_factory=dict)  # InboxResource's, on S3

    @property
    def inbox(self) -> Path:
        """The inbox folder (local installations only; see `inbox_names`)."""
        return self.root / "inbox"

    @property
    def store(self) -> Any:
        return self.storage_resource().backend()

    @property
    def policy_path(self) -> Path:
        return self.root / "policy.yaml"

    def _s3_connection(self) -> dict[str, Any]:
        if self.s3 is None:
            return {}
        return {"endpoint_url": self.s3.endpoint_url, "region_name": "us-east-1",
                "aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY,
                "scratch_dir": str(self.root / "scratch")}

    def storage_resource(self) -> MediaStorage:
        if self.s3 is None:
            return MediaStorage(root=str(self.root / "store"))
        return MediaStorage(root=f"s3://{BUCKET}/{self.prefix}/store", s3_part_size_mb=5,
                            **self._s3_connection())

    def inbox_resource(self) -> InboxResource:
        if self.s3 is None:
            return InboxResource(root=str(self.inbox))
        return InboxResource(root=f"s3://{BUCKET}/{self.prefix}/inbox",
                             **self._s3_connection(), **self.inbox_options)

    def resources(self) -> dict[str, Any]:
        return {"storage": self.storage_resource(),
                "inbox": self.inbox_resource(),
                "policy": PolicyResource(path=str(self.policy_path)),
                "workers": DecodeWorkers(),
                "alerts": AlertNotifier(webhook_url=self.webhook_url)}

    def sensor_resources(self) -> dict[str, Any]:
        """Sensors need no decode workers (a resource with teardown needs a context manager)."""
        return {k: v for k, v in self.resources().items() if k != "workers"}

    def set_policy(self, **sections: dict[str, Any]) -> None:
        # An idle tick returns at once here (no watching the inbox: a test ticks by hand).
        sections["batching"] = {"watch_seconds": 0, **sections.get("batching", {})}
        if self.s3 is not None:  # LastModified is when a file landed: take files at once
            sections["batching"] = {"settle_seconds": 0, "max_wait_seconds": 0,
                                    **sections.get("batching", {})}
        data = yaml.safe_load(REPO_POLICY.read_text())
        for section, values in sections.items():
            data[section] = {**data.get(section, {}), **values}
        self.policy_path.write_text(yaml.safe_dump(data))

    def drop(self, name: str, data: bytes, age: float = 60.0) -> Path:
        """A file lands in the inbox, `age` seconds ago (on S3: now; its policy settles
        and closes batches at once, since LastModified cannot be set)."""
        if self.s3 is not None:
            self.s3.client().put_object(Bucket=BUCKET, Key=f"{self.prefix}/inbox/{name}",
                                        Body=data)
            return self.inbox / name
        path = self.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
        return path

    def drop_files(self, write: Callable[..., Any], **options: Any) -> None:
        """Files written by `write(folder, **options)` (e.g. the samples) land in the inbox."""
        if self.s3 is None:
            write(self.inbox, **options)
            return
        with tempfile.TemporaryDirectory() as folder:
            write(Path(folder), **options)
            client = self.s3.client()
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file():
                    client.upload_file(str(path), BUCKET, f"{self.prefix}/inbox/"
                                       f"{path.relative_to(folder).as_posix()}")

    def inbox_names(self) -> list[str]:
        return sorted(e.name for e in self.inbox_resource().inbox().list_entries())

    def age_inbox(self, seconds: float = 60.0) -> None:
        if self.s3 is not None:
            return  # see `drop`
        stamp = time.time() - seconds
        for path in self.inbox.rglob("*"):
            os.utime(path, (stamp, stamp))

    def tick(self):
        """One sensor evaluation; registers the partitions it asks for, like the daemon."""
        context = build_sensor_context(instance=self.instance,
                                       resources=self.sensor_resources(), cursor=self.cursor)
        result = inbox_sensor(context)
        if hasattr(result, "cursor"):
            self.cursor = result.cursor or context.cursor
            for request in result.dynamic_partitions_requests:
                self.instance.add_dynamic_partitions(request.partitions_def_name,
                                                     list(request.partition_keys))
        else:
            self.cursor = context.cursor
        return result

    def process(self, partition_key: str, selection: Iterable[str] | None = None,
                job_name: str | None = None):
        """Run a batch's job in-process (the lane's job, like the sensor asks for)."""
        if job_name is None:
            lane = (load_manifest(self.store, partition_key) or {}).get("lane", "heavy")
            job_name = job_for_lane(lane)
        job = defs.resolve_job_def(job_name)
        if selection is not None:
            from dagster import AssetKey

            job = job.get_subset(asset_selection={AssetKey(k) for k in selection})
        return job.execute_in_process(partition_key=partition_key, instance=self.instance,
                                      resources=self.resources())

    def ingest(self):
        """Tick the sensor and process every batch it launched; returns the run results."""
        result = self.tick()
        return [self.process(r.partition_key, job_name=r.job_name)
                for r in result.run_requests]

    def arrivals(self):
        return read_arrivals(self.store)


@pytest.fixture
def backend(request) -> str:
    """"local" unless a test is parametrised with ON_BOTH_BACKENDS."""
    return getattr(request, "param", "local")


@pytest.fixture
def install(tmp_path: Path, backend: str, request) -> Installation:
    installation = Installation(root=tmp_path, instance=DagsterInstance.ephemeral())
    if backend == "s3":
        installation.s3 = request.getfixturevalue("s3_server")
        installation.prefix = installation.s3.new_prefix()
    installation.set_policy()
    installation.inbox.mkdir()
    return installation

