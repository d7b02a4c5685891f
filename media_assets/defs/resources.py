"""Resources: where files land, where everything is stored, and the operator's policy."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from media_assets.media.alerts import Alert, WebhookNotifier
from media_assets.media.policy import Limits, Policy, load_policy
from media_assets.media.pool import Outcome, WorkerPool
from media_assets.media.usage import MeteredStore
from media_assets.storage import LocalInbox, LocalObjectStore


class MediaStorage(ConfigurableResource):
    """The content-addressed store, derivatives, quarantine, batch manifests and catalog."""

    root: str = Field(default="data/store", description="Folder that holds the store.")

    def store(self) -> MeteredStore:
        """The store, metered: each call starts a new count (one per step)."""
        return MeteredStore(LocalObjectStore(self.root))


class InboxResource(ConfigurableResource):
    """The folder that new files are dropped into."""

    root: str = Field(default="data/inbox", description="Folder watched by the inbox sensor.")

    def inbox(self) -> LocalInbox:
        return LocalInbox(self.root)


class PolicyResource(ConfigurableResource):
    """The policy file, read afresh by every run and tick (no deploy to change it)."""

    path: str = Field(default="policy.yaml", description="YAML policy; empty = defaults.")

    def load(self) -> Policy:
        return load_policy(self.path or None)


class DecodeWorkers(ConfigurableResource):
    """The run's decode worker processes: spawned on first use, shared by all of the run's
    steps (in-process executor), and stopped when the run ends so no worker outlives it."""

    _pools: dict[tuple[int, int], WorkerPool] = PrivateAttr(default_factory=dict)

    def run(self, tasks: list[tuple[Hashable, Callable[..., Any], tuple[Any, ...]]],
            limits: Limits,
            on_outcome: Callable[[Hashable, Outcome], None] | None = None,
            timeout: float | None = None) -> dict[Hashable, Outcome]:
        """Run each (key, fn, args) in isolation under the policy's time and memory limits
        (`timeout` overrides the per-file time limit, e.g. for videos);
        `on_outcome` sees each file's outcome as soon as it is known."""
        key = (limits.workers, limits.worker_memory_mb)
        if key not in self._pools:
            self._pools[key] = WorkerPool(*key)
        timeout = timeout or limits.per_file_timeout_seconds
        return self._pools[key].run(tasks, timeout, on_outcome,
                                    cpu_seconds=timeout * limits.cpu_time_factor)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()


class AlertNotifier(ConfigurableResource):
    """Where alerts go besides the audit log: a webhook taking Slack-compatible JSON (Slack,
    Mattermost, Teams' Slack connector, any HTTP receiver). Off while the URL is empty."""

    webhook_url: str = Field(default="", description="Set MEDIA_ASSETS_ALERT_WEBHOOK_URL; "
                                                     "empty = audit log only.")
    timeout_seconds: float = Field(default=5.0, description="Per attempt (3 attempts).")

    def notifier(self) -> WebhookNotifier | None:
        return WebhookNotifier(self.webhook_url, self.timeout_seconds) if self.webhook_url \
            else None

    def send(self, alert: Alert) -> bool:
        notifier = self.notifier()
        return notifier.send(alert) if notifier else False
