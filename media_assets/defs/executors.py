"""Where a run's steps execute, chosen by configuration only (`MEDIA_ASSETS_EXECUTOR`).

- `in_process` (default): every step in the run's own process; the per-file process pool
  (`DecodeWorkers`) does the parallel work on this machine.
- `celery`: each step is a Celery task (dagster-celery) on a pool of workers listening on the
  broker `MEDIA_ASSETS_CELERY_BROKER` (results in `MEDIA_ASSETS_CELERY_BACKEND`, by default the
  broker for Redis, `rpc://` otherwise). Workers must share the store (S3, or one filesystem).
- `k8s`: each step is a Kubernetes Job (dagster-k8s `k8s_job_executor`), configured from the
  `K8sRunLauncher` of the instance.

Either way each step keeps its own per-file process pool. The extras `celery` / `k8s` bring
the libraries; they are imported only when chosen.
"""

import os
from collections.abc import Mapping
from typing import Any

from dagster import ExecutorDefinition, in_process_executor

EXECUTOR_ENV = "MEDIA_ASSETS_EXECUTOR"
BROKER_ENV = "MEDIA_ASSETS_CELERY_BROKER"
BACKEND_ENV = "MEDIA_ASSETS_CELERY_BACKEND"
K8S_MAX_CONCURRENT_ENV = "MEDIA_ASSETS_K8S_MAX_CONCURRENT"
EXECUTORS = ("in_process", "celery", "k8s")


def celery_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The celery executor's config: URLs as env references, so they never show in the UI."""
    broker = environ.get(BROKER_ENV, "")
    if not broker:
        raise ValueError(f"{EXECUTOR_ENV}=celery needs {BROKER_ENV} "
                         "(e.g. redis://127.0.0.1:6379/0)")
    if BACKEND_ENV in environ:
        backend: Any = {"env": BACKEND_ENV}
    else:
        backend = {"env": BROKER_ENV} if broker.startswith(("redis", "rediss")) else "rpc://"
    return {"broker": {"env": BROKER_ENV}, "backend": backend}


def k8s_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The k8s_job_executor's config: everything else comes from the K8sRunLauncher."""
    limit = environ.get(K8S_MAX_CONCURRENT_ENV)
    return {"max_concurrent": int(limit)} if limit else {}


def executor_from_env(environ: Mapping[str, str] = os.environ) -> ExecutorDefinition:
    """The executor `MEDIA_ASSETS_EXECUTOR` names; unset means in-process."""
    choice = environ.get(EXECUTOR_ENV, "in_process").strip() or "in_process"
    if choice == "in_process":
        return in_process_executor
    if choice == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config(environ))
    if choice == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor.configured(k8s_config(environ))
    raise ValueError(f"{EXECUTOR_ENV}={choice!r}: expected one of {', '.join(EXECUTORS)}")
