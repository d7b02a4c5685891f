"""Run tags that place a batch run in the run queue (limits: `run_queue` in dagster.yaml).

Every batch run carries its lane (per-lane limits) and its kind of work: `upload` for new
files, `bulk` for replays and rebuilds. Bulk runs have their own limit and a lower
`dagster/priority`, so a new upload's run leaves the queue ahead of the bulk runs still
waiting. Priority only orders the queue, it never pre-empts a running run: that is why bulk
work goes in small runs."""

from media_assets.defs.partitions import LANE_TAG
from media_assets.media.manifest import BULK

WORK_TAG = "media_assets/work"
PRIORITY_TAG = "dagster/priority"
BULK_PRIORITY = -10  # uploads keep Dagster's default, 0


def queue_tags(lane: str, work: str) -> dict[str, str]:
    """The lane, the kind of work and, for bulk work, the low priority."""
    tags = {LANE_TAG: lane, WORK_TAG: work}
    if work == BULK:
        tags[PRIORITY_TAG] = str(BULK_PRIORITY)
    return tags
