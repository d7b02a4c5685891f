"""Resources: where files land, where everything is stored, and the operator's policy."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from dagster import ConfigurableResource, Failure, InitResourceContext
from pydantic import Field, PrivateAttr

from media_assets.codec.pool import Outcome, TaskKey, WorkerPool
from media_assets.core.policy import Limits, Policy, PolicyError
from media_assets.core.store import ObjectStore
from media_assets.operations.alerts import Alert, WebhookNotifier
from media_assets.operations.usage import MeteredStore
from media_assets.records.policy_versions import policy_for_run, policy_for_ticks
from media_assets.storage import LocalInbox, LocalObjectStore
from media_assets.storage.urls import is_s3_url, parse_s3_url

if TYPE_CHECKING:
    from media_assets.storage.s3 import S3ObjectStore
    from media_assets.storage.s3_inbox import S3Inbox

S3Field = Literal["endpoint_url", "s3_sse", "region_name", "profile_name", "aws_access_key_id",
                  "aws_secret_access_key", "aws_session_token", "scratch_dir"]
S3_ENVIRONMENT: dict[S3Field, str] = {  # resource field -> variable (each used only when set)
    "endpoint_url": "MEDIA_ASSETS_S3_ENDPOINT_URL",
    "s3_sse": "MEDIA_ASSETS_S3_SSE",
    "region_name": "AWS_REGION",
    "profile_name": "AWS_PROFILE",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_session_token": "AWS_SESSION_TOKEN",
    "scratch_dir": "MEDIA_ASSETS_SCRATCH",
}
COLD_CLASS_VARIABLE = "MEDIA_ASSETS_S3_COLD_STORAGE_CLASS"


class S3Fields(TypedDict, total=False):
    """The S3Settings fields S3_ENVIRONMENT sets, as keywords a type checker can match (a
    Dagster EnvVar is a str)."""

    endpoint_url: str
    s3_sse: str
    region_name: str
    profile_name: str
    aws_access_key_id: str
    aws_secret_access_key: str
    aws_session_token: str
    scratch_dir: str


class StoreS3Fields(S3Fields, total=False):
    s3_cold_storage_class: str


def s3_fields(value: Callable[[str], str]) -> S3Fields:
    """The fields whose variable is set, each `value(variable)`: the value now (the CLI), or
    an EnvVar Dagster resolves at run time (secrets never show in the UI). Unset variables
    leave the fields' defaults (boto3's own credential chain and region)."""
    fields = S3Fields()
    for field, name in S3_ENVIRONMENT.items():
        if name in os.environ:
            fields[field] = value(name)
    return fields


def store_s3_fields(value: Callable[[str], str]) -> StoreS3Fields:
    """`s3_fields` and the store's cold storage class."""
    fields = StoreS3Fields(**s3_fields(value))
    if COLD_CLASS_VARIABLE in os.environ:
        fields["s3_cold_storage_class"] = value(COLD_CLASS_VARIABLE)
    return fields


# dagster-aws's S3 connection fields (`dagster_aws.s3.resources.ResourceWithS3Configuration`,
# a test keeps the two in step), declared here so that a code location on local folders never
# imports dagster-aws: its package import alone costs ~0.9 s of CPU in every run process, the
# code server and the daemon. The client is still built by dagster-aws's S3Resource.
S3_CONNECTION_FIELDS = ("use_unsigned_session", "region_name", "endpoint_url", "max_attempts",
                        "profile_name", "use_ssl", "verify", "aws_access_key_id",
                        "aws_secret_access_key", "aws_session_token")


class S3Settings(ConfigurableResource):
    """The S3 connection (endpoint, region, credentials: unset = boto3's own chain, e.g. AWS_*
    variables or an instance role), used when a root is an s3:// URL."""

    use_unsigned_session: bool = Field(default=False, description="An unsigned S3 session.")
    region_name: str | None = Field(default=None, description="A custom region.")
    endpoint_url: str | None = Field(default=None, description="A custom endpoint.")
    max_attempts: int = Field(default=5, description="boto3's retry handler: attempts in "
                                                     "all, the first one included.")
    profile_name: str | None = Field(default=None, description="An AWS profile.")
    use_ssl: bool = Field(default=True, description="Use SSL.")
    verify: bool | None = Field(default=None, description="Verify SSL certificates "
                                                          "(default: yes).")
    aws_access_key_id: str | None = Field(default=None, description="AWS access key ID.")
    aws_secret_access_key: str | None = Field(default=None, description="AWS secret key.")
    aws_session_token: str | None = Field(default=None, description="AWS session token.")

    s3_sse: str = Field(default="", description="Server-side encryption on every write "
                                                "(AES256, aws:kms); empty = the bucket's default.")
    s3_part_size_mb: int = Field(default=16, description="Multipart part size (min 5).")
    scratch_dir: str = Field(default="", description="Local folder for downloads and staged "
                                                     "files of an S3 root; empty = system temp.")
    _clients: dict[str, Any] = PrivateAttr(default_factory=dict)

    def s3_client(self) -> Any:
        """A boto3 S3 client built by dagster-aws's S3Resource (one per resource object)."""
        if "s3" not in self._clients:
            from dagster_aws.s3 import S3Resource  # only where a root is on S3

            fields = {name: getattr(self, name) for name in S3_CONNECTION_FIELDS}
            self._clients["s3"] = S3Resource(**fields).get_client()
        return self._clients["s3"]


class MediaStorage(S3Settings):
    """The content-addressed store, derivatives, quarantine, batch manifests and catalog."""

    root: str = Field(default="data/store",
                      description="Folder that holds the store, or s3://bucket/prefix.")
    s3_cold_storage_class: str = Field(
        default="GLACIER_IR", description="The storage class of the cold tier on S3 (an "
                                          "instant-retrieval class keeps reads by key working).")

    def backend(self) -> LocalObjectStore | S3ObjectStore:
        if not is_s3_url(self.root):
            return LocalObjectStore(self.root)
        bucket, prefix = parse_s3_url(self.root)
        from media_assets.storage.s3 import MiB, S3ObjectStore  # boto3: only for S3 roots

        return S3ObjectStore(self.s3_client(), bucket, prefix, sse=self.s3_sse or None,
                             cold_storage_class=self.s3_cold_storage_class,
                             part_size=self.s3_part_size_mb * MiB,
                             scratch_root=self.scratch_dir or None)

    def store(self) -> MeteredStore:
        """The store, metered: each call starts a new count (one per step)."""
        return MeteredStore(self.backend())

    @classmethod
    def from_environment(cls, root: str) -> MediaStorage:
        """Outside Dagster (the CLI): the same variables, read now."""
        return cls(root=root, **store_s3_fields(os.environ.__getitem__))


class InboxResource(S3Settings):
    """The folder (or S3 prefix) that new files are dropped into."""

    root: str = Field(default="data/inbox",
                      description="Folder watched by the inbox sensor, or s3://bucket/prefix.")
    s3_pages_per_tick: int = Field(default=10, description="S3 listing pages one sensor "
                                                           "tick looks at.")
    s3_page_size: int = Field(default=1000, description="Keys per S3 listing page (max 1000).")

    def inbox(self) -> LocalInbox | S3Inbox:
        if not is_s3_url(self.root):
            return LocalInbox(self.root)
        bucket, prefix = parse_s3_url(self.root)
        from media_assets.storage.s3_inbox import S3Inbox  # boto3: only for S3 roots

        return S3Inbox(self.s3_client(), bucket, prefix, page_size=self.s3_page_size,
                       pages_per_scan=self.s3_pages_per_tick,
                       scratch_root=self.scratch_dir or None)


class PolicyResource(ConfigurableResource):
    """The policy file, read afresh by every run and tick (no deploy to change it).

    A run reads it once (`for_run`): its first read pins that version in the store, and
    every step of the run (in any process) uses it, so an edit mid-run cannot fail or change
    the run. A sensor tick (`for_tick`) reads the file each time; while it is invalid, the tick
    goes on with the last valid version and `problem` says what is wrong with the file
    (`records/policy_versions.py`)."""

    path: str = Field(default="policy.yaml", description="YAML policy; empty = defaults.")
    _pinned: dict[str, Policy] = PrivateAttr(default_factory=dict)
    _problem: PolicyError | None = PrivateAttr(default=None)

    def for_run(self, storage: MediaStorage, run_id: str) -> Policy:
        """The policy of run `run_id` (pinned at its first read)."""
        return self.load(storage.backend(), run_id)

    def for_tick(self, storage: MediaStorage) -> Policy:
        """The policy file as it is now, or its last valid version (see `problem`)."""
        return self.load(storage.backend())

    def load(self, store: ObjectStore, run_id: str | None = None) -> Policy:
        """The run's policy (`run_id` given), else the file's, for a tick; policy versions
        are kept in `store`."""
        if not self.path:
            return Policy()
        if run_id is not None:
            if run_id not in self._pinned:
                try:
                    self._pinned[run_id] = policy_for_run(store, run_id, self.path)
                except PolicyError as exc:  # no retry mends a file: fail now, heal later
                    raise Failure(str(exc), allow_retries=False) from exc
            return self._pinned[run_id]
        policy, self._problem = policy_for_ticks(store, self.path)
        return policy

    @property
    def problem(self) -> PolicyError | None:
        """What is wrong with the policy file, when the last `load()` fell back on the last
        valid version (ticks only)."""
        return self._problem


class DecodeWorkers(ConfigurableResource):
    """The run's decode worker processes: spawned on first use (no more than a step has files,
    up to `limits.workers` or one per core), shared by all of the run's steps (in-process
    executor; under celery/k8s each step process has its own), and stopped when the run (or
    step process) ends; a run process killed outright takes its workers with it. Every run on
    the machine shares its cores: a worker decodes only while holding one of the machine's
    core slots (`MEDIA_ASSETS_CORE_SLOTS_DIR`)."""

    _pools: dict[tuple[int, int], WorkerPool] = PrivateAttr(default_factory=dict)

    def run(self, tasks: Sequence[tuple[TaskKey, Callable[..., Any], tuple[Any, ...]]],
            limits: Limits,
            on_outcome: Callable[[TaskKey, Outcome], None] | None = None,
            timeout: float | None = None,
            retry_reason: Callable[[Outcome], str | None] | None = None,
            on_retry: Callable[[TaskKey], None] | None = None) -> dict[TaskKey, Outcome]:
        """Run each (key, fn, args) in isolation under the policy's time and memory limits
        (`timeout` overrides the per-file time limit, e.g. for videos);
        `on_outcome` sees each file's outcome as soon as it is known; a file whose worker
        died in a way the machine may have caused runs again alone (`WorkerPool.run`)."""
        key = (limits.workers, limits.worker_memory_mb)
        if key not in self._pools:
            self._pools[key] = WorkerPool(*key)
        timeout = timeout or limits.per_file_timeout_seconds
        return self._pools[key].run(tasks, timeout, on_outcome,
                                    cpu_seconds=timeout * limits.cpu_time_factor,
                                    retry_reason=retry_reason, on_retry=on_retry)

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
