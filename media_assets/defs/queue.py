"""Run tags that place a batch run in the run queue (limits: `run_queue` in dagster.yaml).

Every batch run carries its lane (per-lane limits) and its kind of work: `upload` for new
files, `bulk` for replays and rebuilds. Bulk runs have their own limit and a lower
`dagster/priority`, so a new upload's run leaves the queue ahead of the bulk runs still
waiting. Priority only orders the queue, it never pre-empts a running run: that is why bulk
work goes in small runs. On Kubernetes a lane's runs may also carry their pod config
(`dagster-k8s/config`, from MEDIA_ASSETS_K8S_LANE_RESOURCES: deploy/k8s-lanes.md)."""

import os

from media_assets.defs.partitions import LANE_TAG
from media_assets.operations.lane_pods import LANE_PODS_ENV, lane_pod_tags, load_lane_pods
from media_assets.records.manifest import BULK

WORK_TAG = "media_assets/work"
PRIORITY_TAG = "dagster/priority"
BULK_PRIORITY = -10  # uploads keep Dagster's default, 0


def queue_tags(lane: str, work: str) -> dict[str, str]:
    """The lane, the kind of work, for bulk work the low priority, and the lane's pod config
    when the deploy maps lanes to pods (read at each tick, like the policy)."""
    tags = {LANE_TAG: lane, WORK_TAG: work}
    if work == BULK:
        tags[PRIORITY_TAG] = str(BULK_PRIORITY)
    return tags | lane_pod_tags(lane, load_lane_pods(os.environ.get(LANE_PODS_ENV, "")))
