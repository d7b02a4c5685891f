"""Assembly only: the code location's assets, checks, jobs, sensors and resources.

Paths default to folders under the working directory; environment variables override them
(MEDIA_ASSETS_INBOX, MEDIA_ASSETS_STORE, MEDIA_ASSETS_POLICY, and the alert webhook
MEDIA_ASSETS_ALERT_WEBHOOK_URL), read by Dagster at run time. An `s3://bucket/prefix` store or
inbox puts it on S3 (MEDIA_ASSETS_S3_* and the standard AWS_* variables: see
`S3_ENVIRONMENT` in defs/resources.py).
MEDIA_ASSETS_EXECUTOR picks where steps run (`in_process`, `celery`, `k8s`; see
defs/executors.py).
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar

from media_assets.defs.alerting import run_failure_alerts
from media_assets.defs.archive import (
    archive_assets,
    archive_checks,
    archive_jobs,
    archive_schedules,
    archive_sensors,
)
from media_assets.defs.av_checks import av_checks
from media_assets.defs.av_derivatives import av_assets
from media_assets.defs.batch_pass import batch_pass
from media_assets.defs.catalog import catalog
from media_assets.defs.checks import batch_checks
from media_assets.defs.executors import executor_from_env
from media_assets.defs.freshness import (
    arrivals_are_catalogued_in_time,
    freshness_job,
    freshness_schedule,
)
from media_assets.defs.jobs import LANE_JOBS
from media_assets.defs.lifecycle import lifecycle_jobs, lifecycle_schedules
from media_assets.defs.maintenance import (
    maintenance_checks,
    maintenance_jobs,
    maintenance_schedules,
    maintenance_sensors,
)
from media_assets.defs.operations import operations_jobs
from media_assets.defs.policy_jobs import policy_jobs
from media_assets.defs.recovery import rebuild_catalog
from media_assets.defs.resources import (
    AlertNotifier,
    DecodeWorkers,
    InboxResource,
    MediaStorage,
    PolicyResource,
    s3_fields,
    store_s3_fields,
)
from media_assets.defs.rollout import rollout_jobs
from media_assets.defs.sensors import inbox_sensor
from media_assets.defs.usage import usage, usage_job, usage_schedule


def _setting(env_name: str, default: str) -> str | EnvVar:
    """An EnvVar when the variable is set (resolved by Dagster at run time), else the default."""
    return EnvVar(env_name) if env_name in os.environ else default


defs = Definitions(
    assets=[batch_pass, *av_assets, catalog, *archive_assets, usage],
    asset_checks=[*batch_checks, *av_checks, *archive_checks, *maintenance_checks,
                  arrivals_are_catalogued_in_time],
    jobs=[*LANE_JOBS.values(), *archive_jobs, *lifecycle_jobs, *maintenance_jobs,
          *operations_jobs, *rollout_jobs, *policy_jobs, freshness_job, usage_job, rebuild_catalog],
    schedules=[*maintenance_schedules, *archive_schedules, *lifecycle_schedules,
               freshness_schedule, usage_schedule],
    sensors=[inbox_sensor, *maintenance_sensors, *archive_sensors, run_failure_alerts],
    resources={
        "storage": MediaStorage(
            root=_setting("MEDIA_ASSETS_STORE", "data/store"),
            **store_s3_fields(EnvVar)),
        "inbox": InboxResource(root=_setting("MEDIA_ASSETS_INBOX", "data/inbox"),
                               **s3_fields(EnvVar)),
        "policy": PolicyResource(path=_setting("MEDIA_ASSETS_POLICY", "policy.yaml")),
        "workers": DecodeWorkers(),
        "alerts": AlertNotifier(webhook_url=_setting("MEDIA_ASSETS_ALERT_WEBHOOK_URL", "")),
    },
    # By default steps run in the run's own process and the per-file process pool does the
    # parallel work; MEDIA_ASSETS_EXECUTOR=celery|k8s sends each step elsewhere.
    executor=executor_from_env(),
)
