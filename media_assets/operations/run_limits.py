"""How long a batch run may take at most: the `dagster/max_runtime` tag of each batch run.

Run monitoring fails a run that exceeds it, which frees its lane's queue slot when nobody can
tell whether its worker lives (a run launched on another machine, or a launcher that cannot
check). It is an upper bound from the policy's per-file limits, so it never ends a healthy
run; on this machine `run_liveness.py` finds a dead run far sooner."""

from __future__ import annotations

import math

from media_assets.codec.file_pass import chain_seconds
from media_assets.core.policy import Policy

MAX_RUNTIME_TAG = "dagster/max_runtime"
RUN_START_SECONDS = 600  # launch, imports, pool start, checks and catalog: minutes at worst
RUNTIME_MARGIN = 1.5


def max_runtime_seconds(policy: Policy, lane: str, files: int) -> int:
    """An upper bound of a batch run's wall time: every file taking its whole allowance one
    after another (as on one worker), and again if retried alone, with margin. The sensor
    cannot know the run machine's cores, so it does not divide by them."""
    per_file = chain_seconds(policy)
    if lane != "image":  # video and audio: their own steps, each under its own limit
        per_file += 2 * max(policy.video.timeout_seconds, policy.audio.timeout_seconds)
    return math.ceil(RUN_START_SECONDS + RUNTIME_MARGIN * 2 * per_file * max(files, 1))


def max_runtime_tag(policy: Policy, lane: str, files: int) -> dict[str, str]:
    """The run tag run monitoring enforces (`dagster/max_runtime`, in seconds)."""
    return {MAX_RUNTIME_TAG: str(max_runtime_seconds(policy, lane, files))}
