"""The sensor's last step alone: a planned tick is opened — manifests and open markers
written durably first, then one `SensorResult` registers the batches and launches them."""

from datetime import UTC, datetime

from dagster import SensorResult, SkipReason, build_sensor_context

from media_assets.core.policy import Limits, Policy
from media_assets.defs.partitions import LANE_TAG
from media_assets.defs.sensors import open_and_launch
from media_assets.operations.batching import Candidate
from media_assets.operations.breaker import BreakerState, load_state
from media_assets.operations.inbox_tick import Scan, TickPlan, plan_tick
from media_assets.operations.run_limits import MAX_RUNTIME_TAG, max_runtime_seconds
from media_assets.records.manifest import load_manifest, open_batch_keys

NOW = datetime.now(UTC)


def planned(*names: str, lane: str = "image", **breakers: BreakerState) -> TickPlan:
    files = tuple(Candidate(name, 1_000, NOW.timestamp() - 60, lane, seconds=0.5)
                  for name in names)
    return plan_tick(Scan(candidates=files, next_after="b.jpg"), [], None, Policy(), NOW,
                     breakers)


def test_open_writes_each_manifest_and_marker_then_registers_and_launches(install):
    plan = planned("a.jpg", "b.jpg")
    context = build_sensor_context(instance=install.instance)
    result, cursor = open_and_launch(context, install.store, plan, None, Policy(), NOW, None)
    assert isinstance(result, SensorResult)
    [key] = [b.key for b in plan.to_open]
    assert open_batch_keys(install.store) == [key]
    manifest = load_manifest(install.store, key)
    assert [s["inbox"] for s in manifest["sources"]] == ["a.jpg", "b.jpg"]
    assert manifest["estimated_seconds"] == 1.0
    [add] = result.dynamic_partitions_requests
    assert (add.partitions_def_name, list(add.partition_keys)) == ("batches", [key])
    [run] = result.run_requests
    assert (run.run_key, run.partition_key, run.job_name) == (key, key, "process_images")
    assert run.tags == {LANE_TAG: "image", "media_assets/work": "upload",
                        MAX_RUNTIME_TAG: str(max_runtime_seconds(Policy(), "image", 2))}
    assert result.cursor == cursor == plan.cursor and "b.jpg" in result.cursor


def test_below_the_disk_guard_nothing_is_written_and_the_cursor_stays(install):
    plan = planned("a.jpg")
    context = build_sensor_context(instance=install.instance, cursor="before")
    no_room = Policy(limits=Limits(min_free_bytes=10**18))
    result, cursor = open_and_launch(context, install.store, plan, "before", no_room, NOW,
                                     None)
    assert isinstance(result, SkipReason) and "disk guard" in result.skip_message
    assert open_batch_keys(install.store) == []
    assert cursor == "before"  # the same batches are planned again later


def test_a_tick_with_nothing_to_launch_moves_its_cursor_and_says_why(install):
    plan = planned()
    context = build_sensor_context(instance=install.instance)
    result, cursor = open_and_launch(context, install.store, plan, None, Policy(), NOW, None)
    assert isinstance(result, SkipReason)
    assert result.skip_message == "nothing new in the inbox"
    assert cursor == plan.cursor


def test_a_half_open_lanes_probe_batch_is_recorded_once_it_is_open(install):
    half = BreakerState("half_open", "2026-11-27T11:58:00", "timeouts")
    plan = planned("a.jpg", "b.jpg", image=half)
    context = build_sensor_context(instance=install.instance)
    result, _ = open_and_launch(context, install.store, plan, None, Policy(), NOW, None)
    [run] = result.run_requests
    assert [s["inbox"] for s in load_manifest(install.store, run.run_key)["sources"]] == [
        "a.jpg"]
    assert load_state(install.store, "image").probe_batch == run.run_key
