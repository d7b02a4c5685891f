"""A deploy's lane -> Kubernetes pod config, for dagster-k8s's `dagster-k8s/config` run tag.

Set `MEDIA_ASSETS_K8S_LANE_RESOURCES` to a YAML/JSON file (or inline JSON) mapping each lane
(`image`, `av`, `heavy`, `rebuild`; `default` for the rest) to what dagster-k8s accepts in
that tag: `container_config` (resources, env), `pod_spec_config` (node_selector,
tolerations), `pod_template_spec_metadata`, `job_config`, `job_metadata`, `job_spec_config`,
`merge_behavior`. Unset, runs carry no such tag. See deploy/k8s-lanes.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

LANE_PODS_ENV = "MEDIA_ASSETS_K8S_LANE_RESOURCES"
K8S_CONFIG_TAG = "dagster-k8s/config"
K8S_CONFIG_KEYS = frozenset({"container_config", "pod_spec_config", "pod_template_spec_metadata",
                             "job_config", "job_metadata", "job_spec_config", "merge_behavior"})


def load_lane_pods(setting: str) -> dict[str, dict[str, Any]]:
    """The mapping a setting names (a file path or inline JSON); "" means none. Refuses
    anything dagster-k8s would not take, naming it."""
    setting = setting.strip()
    if not setting:
        return {}
    raw = json.loads(setting) if setting.startswith("{") else yaml.safe_load(
        Path(setting).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{LANE_PODS_ENV}: expected a mapping of lane -> pod config")
    for lane, config in raw.items():
        if not isinstance(config, dict):
            raise ValueError(f"{LANE_PODS_ENV}: lane {lane!r} must map to a mapping")
        unknown = set(config) - K8S_CONFIG_KEYS
        if unknown:
            raise ValueError(f"{LANE_PODS_ENV}: lane {lane!r} has unknown keys "
                             f"{sorted(unknown)}; allowed: {sorted(K8S_CONFIG_KEYS)}")
    return raw


def lane_pod_tags(lane: str, pods: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The run tag giving a lane's runs their pods (its own entry, else `default`)."""
    config = pods.get(lane, pods.get("default"))
    return {K8S_CONFIG_TAG: json.dumps(config, sort_keys=True)} if config else {}
