"""A deploy maps lanes to Kubernetes pods: each lane's runs carry their own
`dagster-k8s/config` tag, read from a file or inline JSON, refused loudly when malformed."""

import json
from pathlib import Path

import pytest

from media_assets.operations.lane_pods import K8S_CONFIG_TAG, lane_pod_tags, load_lane_pods

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "k8s-lane-resources.yaml"


def test_unset_means_no_pod_config_tag():
    assert lane_pod_tags("heavy", load_lane_pods("")) == {}


def test_the_shipped_mapping_sends_heavy_runs_to_big_pods_on_the_heavy_pool():
    pods = load_lane_pods(str(SHIPPED))
    heavy = json.loads(lane_pod_tags("heavy", pods)[K8S_CONFIG_TAG])
    assert heavy["container_config"]["resources"]["requests"]["memory"] == "24Gi"
    assert heavy["pod_spec_config"]["node_selector"] == {"media-assets/pool": "heavy"}
    assert heavy["pod_spec_config"]["tolerations"][0]["key"] == "media-assets/heavy"
    image = json.loads(lane_pod_tags("image", pods)[K8S_CONFIG_TAG])
    assert "pod_spec_config" not in image  # ordinary runs stay off the heavy pool
    assert lane_pod_tags("someday", pods) == lane_pod_tags("default", pods)


def test_inline_json_works_too_and_a_lane_without_entry_or_default_gets_nothing():
    pods = load_lane_pods('{"heavy": {"container_config": {"resources": {}}}}')
    assert json.loads(lane_pod_tags("heavy", pods)[K8S_CONFIG_TAG]) == {
        "container_config": {"resources": {}}}
    assert lane_pod_tags("image", pods) == {}


@pytest.mark.parametrize(("setting", "message"), [
    ('{"heavy": {"resources": {}}}', "unknown keys ['resources']"),
    ('{"heavy": 4}', "must map to a mapping"),
    ("[1, 2]", "expected a mapping"),
])
def test_a_malformed_mapping_is_refused_naming_the_problem(tmp_path, setting, message):
    path = tmp_path / "pods.yaml"
    path.write_text(setting)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_lane_pods(str(path))
