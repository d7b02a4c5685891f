"""The Kubernetes deploy files say what dagster-k8s and the dagster Helm chart take.

No cluster is reachable here, so each file is checked against the schemas that would read it:
the instance YAML through Dagster's instance-config validation and each configurable class's
own config schema (K8sRunLauncher, QueuedRunCoordinator, PostgreSQL storage); the Helm values
key by key against the chart's documented structure (named below: the chart's JSON schema is
not installable from PyPI), then rendered to an instance the way the chart's templates do and
validated like the YAML; the lanes' `dagster-k8s/config` tags through dagster-k8s's tag
parser and into the Kubernetes Job the run launcher would create."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import class_from_code_pointer
from dagster_k8s import k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    DagsterK8sJobConfig,
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from media_assets.defs.executors import k8s_config
from media_assets.operations.lane_pods import lane_pod_tags, load_lane_pods

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
LOCAL_QUEUE = yaml.safe_load((REPO / "dagster.yaml").read_text())["run_queue"]
ENV = {"MEDIA_ASSETS_PG_URL": "postgresql+psycopg2://dagster:pw@db:5432/dagster",
       "DAGSTER_HOME": "/opt/dagster/dagster_home", "DAGSTER_PG_PASSWORD": "pw",
       "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "dagster-instance",
       "DAGSTER_K8S_PG_PASSWORD_SECRET": "media-assets-postgresql",
       "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "dagster-pipeline-env",
       "DAGSTER_K8S_JOB_NAMESPACE": "media-assets"}

# The dagster chart's values (chart 1.13) for the sections used here: key -> sub-structure;
# None = a leaf or a Kubernetes object the chart passes through; [spec] = a list of spec.
K8S_RUN_CONFIG = {k: None for k in ("containerConfig", "podSpecConfig",
                                    "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata")}
TAG_LIMIT = {"key": None, "value": None, "limit": None}
USER_DEPLOYMENT = {k: None for k in (
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "port", "env", "envConfigMaps",
    "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
    "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels",
    "volumeMounts", "volumes", "schedulerName")}
USER_DEPLOYMENT["includeConfigInLaunchedRuns"] = {"enabled": None}
CHART = {
    "global": {k: None for k in ("postgresqlSecretName", "dagsterHome", "serviceAccountName",
                                 "celeryConfigSecretName")},
    "generatePostgresqlPasswordSecret": None,
    "postgresql": {**{k: None for k in ("enabled", "image", "postgresqlHost",
                                        "postgresqlUsername", "postgresqlPassword",
                                        "postgresqlDatabase", "postgresqlParams",
                                        "postgresqlScheme")}, "service": {"port": None}},
    "dagster-user-deployments": {"enabled": None, "enableSubchart": None,
                                 "imagePullSecrets": None, "deployments": [USER_DEPLOYMENT]},
    "runLauncher": {"type": None, "config": {"k8sRunLauncher": {
        **{k: None for k in ("image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig",
                             "kubeconfigFile", "envConfigMaps", "envSecrets", "envVars",
                             "volumeMounts", "volumes", "labels", "failPodOnRunFailure",
                             "resources", "schedulerName", "securityContext")},
        "runK8sConfig": K8S_RUN_CONFIG}}},
    "dagsterDaemon": {"runCoordinator": {"enabled": None, "type": None, "config": {
        "queuedRunCoordinator": {"maxConcurrentRuns": None, "dequeueIntervalSeconds": None,
                                 "dequeueNumWorkers": None, "dequeueUseThreads": None,
                                 "tagConcurrencyLimits": [TAG_LIMIT]}}}},
    "telemetry": {"enabled": None},
}


def unknown_keys(value: Any, spec: Any, path: str = "") -> list[str]:
    """The paths in `value` that `spec` does not name."""
    if spec is None:
        return []
    if isinstance(spec, list):
        return [k for i, item in enumerate(value)
                for k in unknown_keys(item, spec[0], f"{path}[{i}]")]
    found: list[str] = []
    for key, sub in value.items():
        where = f"{path}.{key}" if path else key
        found += [where] if key not in spec else unknown_keys(sub, spec[key], where)
    return found


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def render_instance(values: dict[str, Any], namespace: str = "media-assets") -> dict[str, Any]:
    """The dagster.yaml the chart's instance templates make from these values."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    pg = values["postgresql"]
    return {
        "storage": {"postgres": {"postgres_db": {
            "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
            "port": pg["service"]["port"], "params": pg["postgresqlParams"]}}},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": {
            "load_incluster_config": launcher["loadInclusterConfig"],
            "job_namespace": launcher.get("jobNamespace") or namespace,
            "image_pull_policy": launcher["imagePullPolicy"],
            "service_account_name": "dagster",
            "dagster_home": {"env": "DAGSTER_HOME"},
            "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
            "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
            "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}],
            "env_secrets": [s["name"] for s in launcher.get("envSecrets", [])],
            "run_k8s_config": {snake(k): v for k, v in launcher.get("runK8sConfig", {}).items()},
        }},
        "run_coordinator": {"module": "dagster._core.run_coordinator",
                            "class": "QueuedRunCoordinator", "config": {
                                "max_concurrent_runs": queue["maxConcurrentRuns"],
                                "tag_concurrency_limits": queue["tagConcurrencyLimits"],
                                "dequeue_interval_seconds": queue["dequeueIntervalSeconds"]}},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def validated_instance(config: dict[str, Any], home: Path) -> dict[str, Any]:
    """Dagster's own validation of an instance config, then of each class's config; no
    connection is made and no class is instantiated (K8sRunLauncher would load kubeconfig)."""
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    validated, _ = dagster_instance_config(str(home))
    for section in ("run_launcher", "run_coordinator"):
        klass = class_from_code_pointer(validated[section]["module"],
                                        validated[section]["class"])
        result = process_config(klass.config_type(), validated[section]["config"])
        assert result.success, (section, [e.message for e in result.errors])
        validated[section] = {**validated[section], "resolved": result.value}
    [(kind, storage)] = validated["storage"].items()
    assert kind == "postgres"
    from dagster_postgres import DagsterPostgresStorage

    result = process_config(DagsterPostgresStorage.config_type(), storage)
    assert result.success, [e.message for e in result.errors]
    return validated


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def test_the_instance_yaml_runs_each_batch_as_a_kubernetes_job_queued_like_locally(tmp_path):
    config = yaml.safe_load((DEPLOY / "dagster.k8s.yaml").read_text())
    validated = validated_instance(config, tmp_path / "home")
    assert validated["run_launcher"]["class"] == "K8sRunLauncher"
    assert validated["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert validated["run_coordinator"]["config"] == LOCAL_QUEUE


def test_the_helm_values_use_only_keys_the_dagster_chart_takes():
    assert unknown_keys(VALUES, CHART) == []
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert VALUES["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert VALUES["postgresql"]["enabled"] is False  # an external database


def test_the_helm_values_render_an_instance_dagster_k8s_accepts(tmp_path):
    validated = validated_instance(render_instance(VALUES), tmp_path / "home")
    launcher = validated["run_launcher"]["resolved"]
    assert launcher["dagster_home"] == "/opt/dagster/dagster_home"
    assert launcher["run_k8s_config"]["container_config"]["resources"]["requests"]["cpu"] == "1"


def test_the_helm_run_queue_limits_equal_dagster_yaml():
    rendered = render_instance(VALUES)["run_coordinator"]["config"]
    assert rendered == LOCAL_QUEUE
    spike = {(limit["key"], limit["value"]): limit["limit"]
             for limit in rendered["tag_concurrency_limits"]}
    assert spike == {("media_assets/lane", "image"): 2, ("media_assets/lane", "av"): 1,
                     ("media_assets/lane", "heavy"): 1, ("media_assets/lane", "rebuild"): 1,
                     ("media_assets/work", "bulk"): 1}


def test_the_user_code_deployment_serves_this_image_with_its_settings_from_secrets():
    [deployment] = VALUES["dagster-user-deployments"]["deployments"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "media_assets.definitions"]
    assert f"EXPOSE {deployment['port']}" in dockerfile
    assert '"-m", "media_assets.definitions"' in dockerfile and '"-p", "4000"' in dockerfile
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert re.search(r"^USER (?!root|0\b)\S+", dockerfile, re.M), "runs as a non-root user"
    assert 'pip install ".[k8s' in dockerfile
    assert deployment["envSecrets"] == [{"name": "media-assets-env"}]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}


def run_job_for(lane: str, tmp_path: Path):
    """The Kubernetes Job the K8sRunLauncher would create for a batch run of this lane."""
    launcher = validated_instance(render_instance(VALUES), tmp_path / "home")[
        "run_launcher"]["resolved"]
    tags = lane_pod_tags(lane, load_lane_pods(str(DEPLOY / "k8s-lane-resources.yaml")))
    context = K8sContainerContext(
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher["run_k8s_config"]),
    ).merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags)))
    job_config = DagsterK8sJobConfig(job_image="registry.example.com/media-assets:0.1.0",
                                     dagster_home=launcher["dagster_home"],
                                     instance_config_map=launcher["instance_config_map"],
                                     env_secrets=launcher["env_secrets"])
    return construct_dagster_k8s_job(job_config, ["dagster", "api", "execute_run", "{}"],
                                     "dagster-run-abc", context.run_k8s_config,
                                     component="run_worker")


def test_every_lanes_pod_tag_is_valid_dagster_k8s_config():
    pods = load_lane_pods(str(DEPLOY / "k8s-lane-resources.yaml"))
    assert {"default", "image", "av", "heavy", "rebuild"} <= set(pods)
    for lane in pods:
        get_user_defined_k8s_config(lane_pod_tags(lane, pods))  # raises on invalid config


def test_a_heavy_run_gets_a_big_pod_on_the_heavy_pool(tmp_path):
    job = run_job_for("heavy", tmp_path)
    pod = job.spec.template.spec
    resources = pod.containers[0].resources
    assert resources.requests["cpu"] == "8" and resources.limits["memory"] == "32Gi"
    assert pod.node_selector == {"media-assets/pool": "heavy"}
    assert [t.key for t in pod.tolerations] == ["media-assets/heavy"]
    assert job.spec.active_deadline_seconds == 21600


def test_a_photo_run_gets_its_lane_pod_over_the_launchers_default(tmp_path):
    pod = run_job_for("image", tmp_path).spec.template.spec
    assert pod.containers[0].resources.requests["cpu"] == "2"
    assert not pod.node_selector and not pod.tolerations


def test_the_k8s_step_executor_config_is_valid():
    schema = k8s_job_executor.config_schema.config_type
    assert process_config(schema, k8s_config({})).success
    assert process_config(schema, k8s_config({"MEDIA_ASSETS_K8S_MAX_CONCURRENT": "4"})).success
