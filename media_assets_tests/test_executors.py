"""MEDIA_ASSETS_EXECUTOR picks where a run's steps execute; nothing else changes."""

import pytest

from media_assets.defs.executors import celery_config, executor_from_env, k8s_config

BROKER = "redis://127.0.0.1:6379/0"


def test_unset_or_in_process_keeps_steps_in_the_runs_process():
    assert executor_from_env({}).name == "in_process"
    assert executor_from_env({"MEDIA_ASSETS_EXECUTOR": "in_process"}).name == "in_process"


def test_celery_takes_the_broker_from_the_environment_never_as_a_literal():
    env = {"MEDIA_ASSETS_EXECUTOR": "celery", "MEDIA_ASSETS_CELERY_BROKER": BROKER}
    assert executor_from_env(env).name == "celery"
    assert celery_config(env) == {"broker": {"env": "MEDIA_ASSETS_CELERY_BROKER"},
                                  "backend": {"env": "MEDIA_ASSETS_CELERY_BROKER"}}


def test_celery_results_go_to_the_backend_when_set_else_rpc_for_rabbitmq():
    amqp = {"MEDIA_ASSETS_CELERY_BROKER": "pyamqp://guest@127.0.0.1:5672//"}
    assert celery_config(amqp)["backend"] == "rpc://"
    chosen = {**amqp, "MEDIA_ASSETS_CELERY_BACKEND": "redis://127.0.0.1:6379/1"}
    assert celery_config(chosen)["backend"] == {"env": "MEDIA_ASSETS_CELERY_BACKEND"}


def test_celery_without_a_broker_is_refused_by_name():
    with pytest.raises(ValueError, match="MEDIA_ASSETS_CELERY_BROKER"):
        executor_from_env({"MEDIA_ASSETS_EXECUTOR": "celery"})


def test_k8s_launches_each_step_as_a_kubernetes_job():
    assert executor_from_env({"MEDIA_ASSETS_EXECUTOR": "k8s"}).name == "k8s"
    assert k8s_config({"MEDIA_ASSETS_K8S_MAX_CONCURRENT": "4"}) == {"max_concurrent": 4}


def test_an_unknown_executor_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="in_process, celery, k8s"):
        executor_from_env({"MEDIA_ASSETS_EXECUTOR": "dask"})
