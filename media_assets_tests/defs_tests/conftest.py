"""A temporary media_assets installation: inbox, store, policy file, ephemeral instance."""

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
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
from media_assets.media.catalog import read_arrivals
from media_assets.media.manifest import load_manifest
from media_assets.storage import LocalObjectStore

REPO_POLICY = Path(__file__).resolve().parents[2] / "policy.yaml"


@dataclass
class Installation:
    root: Path
    instance: DagsterInstance
    cursor: str | None = None
    webhook_url: str = ""

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def store(self) -> LocalObjectStore:
        return LocalObjectStore(self.root / "store")

    @property
    def policy_path(self) -> Path:
        return self.root / "policy.yaml"

    def resources(self) -> dict[str, Any]:
        return {"storage": MediaStorage(root=str(self.root / "store")),
                "inbox": InboxResource(root=str(self.inbox)),
                "policy": PolicyResource(path=str(self.policy_path)),
                "workers": DecodeWorkers(),
                "alerts": AlertNotifier(webhook_url=self.webhook_url)}

    def sensor_resources(self) -> dict[str, Any]:
        """Sensors need no decode workers (a resource with teardown needs a context manager)."""
        return {k: v for k, v in self.resources().items() if k != "workers"}

    def set_policy(self, **sections: dict[str, Any]) -> None:
        data = yaml.safe_load(REPO_POLICY.read_text())
        for section, values in sections.items():
            data[section] = {**data.get(section, {}), **values}
        self.policy_path.write_text(yaml.safe_dump(data))

    def drop(self, name: str, data: bytes, age: float = 60.0) -> Path:
        path = self.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        stamp = time.time() - age
        os.utime(path, (stamp, stamp))
        return path

    def age_inbox(self, seconds: float = 60.0) -> None:
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
def install(tmp_path: Path) -> Installation:
    installation = Installation(root=tmp_path, instance=DagsterInstance.ephemeral())
    installation.set_policy()
    installation.inbox.mkdir()
    return installation
