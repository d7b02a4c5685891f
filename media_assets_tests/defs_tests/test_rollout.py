"""A thumbnail spec rolled out safely: canary on 10 % of the files (by content hash) with a
comparison report, promoted; changed again, canaried, rolled back without a render; the
unused specs' outputs collected. The catalog always points at files that exist, and the
audit log records each step."""

import polars as pl
from dagster import SkipReason, build_sensor_context

from media_assets.core.policy import load_policy
from media_assets.definitions import defs
from media_assets.defs.maintenance import stale_derivatives_sensor
from media_assets.records.audit import read_audit
from media_assets.samples import synth_photo

THUMBNAIL = {"long_edge": 250, "format": "webp", "quality": 80}
PREVIEW = {"long_edge": 1440, "format": "jpeg", "quality": 80}


def thumbnails(install) -> dict[str, dict]:
    view = install.arrivals()
    return {r["content_id"]: next(d for d in r["derivatives"] if d["name"] == "thumbnail")
            for r in view.filter(pl.col("status") == "ok").iter_rows(named=True)}


def roll(install, quality: int, canary: dict | None = None):
    """Change the policy, let the rebuild sensor react, run what it asks for; returns the
    thumbnails materialisations' metadata."""
    install.set_policy(derivatives={"thumbnail": {**THUMBNAIL, "quality": quality},
                                    "preview": PREVIEW},
                       canary={"thumbnail": canary} if canary else {})
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    metadata = []
    for request in stale_derivatives_sensor(context).run_requests:
        selection = [k.to_user_string() for k in request.asset_selection]
        result = install.process(request.partition_key, selection=selection)
        metadata += [m.metadata for m in result.asset_materializations_for_node(
            "batch_pass")]
    assert isinstance(stale_derivatives_sensor(context), SkipReason)  # nothing left stale
    return metadata


def assert_catalog_points_at_existing_files(install):
    for entry in thumbnails(install).values():
        assert install.store.exists(entry["key"]), entry["key"]


def test_canary_promote_then_canary_rollback_and_collection(install):
    for seed in range(30):
        synth_photo((96, 72), seed=seed).save(install.inbox / f"photo_{seed:02}.jpg", quality=90)
    install.age_inbox()
    install.ingest()
    context = build_sensor_context(instance=install.instance,
                                   resources=install.sensor_resources())
    stale_derivatives_sensor(context)  # the rollout state is first seen as it is

    # Canary: quality 70 for 10 % of the files.
    [meta] = roll(install, 80, {"fraction": 0.1, "quality": 70})
    rules = load_policy(install.policy_path)
    canary_spec, stable_spec = rules.canaries["thumbnail"].spec, rules.derivative("thumbnail")
    chosen = {cid for cid in thumbnails(install) if rules.in_canary("thumbnail", cid)}
    assert 0 < len(chosen) < 30
    for cid, entry in thumbnails(install).items():
        assert entry["spec_hash"] == (canary_spec if cid in chosen else stable_spec).spec_hash
    assert meta["canary_files"].value == len(chosen)
    report = meta["canary"].value
    assert report["canary"]["check_pass_rate"] == report["stable"]["check_pass_rate"] == 1.0
    assert report["bytes_ratio"] < 1  # quality 70 is smaller than 80 on the same files
    assert report["canary"]["mean_render_ms"] is not None
    fleet = defs.resolve_job_def("rollout_report").execute_in_process(
        instance=install.instance, resources=install.sensor_resources())
    [output] = [e for e in fleet.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["thumbnail"].value["canary_files"] == len(chosen)
    assert_catalog_points_at_existing_files(install)

    # Promote: quality 70 for everyone; the canary's files are not rendered again.
    [meta] = roll(install, 70)
    assert meta["rendered"].value == 30 - len(chosen)
    assert {e["spec_hash"] for e in thumbnails(install).values()} == {canary_spec.spec_hash}
    assert_catalog_points_at_existing_files(install)
    old = f"thumbnail/{stable_spec.spec_hash}"
    defs.resolve_job_def("collect_derivatives").execute_in_process(
        instance=install.instance, resources=install.sensor_resources())  # dry run
    assert install.store.exists(f"derived/{old}/" + next(
        k.split(f"{old}/")[1] for k in install.store.list(f"derived/{old}/")))
    defs.resolve_job_def("collect_derivatives").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        run_config={"ops": {"collect_derivatives_op": {"config": {"dry_run": False}}}})
    assert list(install.store.list(f"derived/{old}/")) == []
    assert_catalog_points_at_existing_files(install)

    # Another change, canaried, then rolled back: the rollback renders nothing.
    roll(install, 70, {"fraction": 0.1, "quality": 60})
    second = load_policy(install.policy_path).canaries["thumbnail"].spec
    assert sum(e["spec_hash"] == second.spec_hash for e in thumbnails(install).values()) \
        == len(chosen)
    [meta] = roll(install, 70)
    assert meta["rendered"].value == 0
    assert {e["spec_hash"] for e in thumbnails(install).values()} == {canary_spec.spec_hash}
    assert_catalog_points_at_existing_files(install)
    defs.resolve_job_def("collect_derivatives").execute_in_process(
        instance=install.instance, resources=install.sensor_resources(),
        run_config={"ops": {"collect_derivatives_op": {"config": {"dry_run": False}}}})
    assert list(install.store.list(f"derived/thumbnail/{second.spec_hash}/")) == []
    assert_catalog_points_at_existing_files(install)

    steps = read_audit(install.store).filter(
        pl.col("action").str.starts_with("rollout") | (pl.col("action") == "collect_derivatives"))
    assert steps["action"].to_list() == ["rollout_canary", "rollout_promote",
                                         "collect_derivatives", "rollout_canary",
                                         "rollout_rollback", "collect_derivatives"]
