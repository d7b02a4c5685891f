"""Rolling out a derivative spec: the fleet-wide canary report, and collecting the outputs of
specs nothing refers to any more (dry run first). The canary itself is a policy setting
(`canary:`); the stale_derivatives_sensor renders it and audits each rollout step."""

from datetime import UTC, datetime

from dagster import Config, MetadataValue, OpExecutionContext, job, op
from pydantic import Field

from media_assets.defs.common import table
from media_assets.defs.resources import MediaStorage, PolicyResource
from media_assets.operations.rollout import (
    RENDER_MS_STEP,
    compare,
    referenced_hashes,
    unreferenced_derivatives,
)
from media_assets.records.audit import append, audit_record
from media_assets.records.catalog import STALE_COLUMNS, content_view, read_catalog
from media_assets.records.manifest import load_step_results


@op(description="Compare each running canary with its stable spec on the same files.")
def rollout_report_op(context: OpExecutionContext, storage: MediaStorage,
                      policy: PolicyResource) -> None:
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    view = content_view(read_catalog(store, columns=STALE_COLUMNS))
    ok = view.filter(view["status"] == "ok") if view.height else view
    metadata: dict[str, int | MetadataValue] = {"canaries": len(rules.canaries)}
    for name in sorted(rules.canaries):
        kinds = ("image", "video", "audio") if name == "thumbnail" else ("image",)
        rows = ok.filter(ok["media_kind"].is_in(kinds)) if ok.height else ok
        chosen = [r for r in rows.iter_rows(named=True) if rules.in_canary(name, r["content_id"])]
        timings: dict[str, dict[str, float]] = {}
        for batch in sorted({r["batch_key"] for r in chosen}):
            for spec_hash, ms in load_step_results(store, batch, RENDER_MS_STEP).items():
                timings.setdefault(spec_hash, {}).update(ms)
        report = compare(store, rules, name, [r["content_id"] for r in chosen], timings)
        assert report is not None  # None only for a name with no canary
        metadata[name] = MetadataValue.json(report)
        context.log.info(f"canary {name}: {report}")
    context.add_output_metadata(metadata)


@job(description="The canary report: for each derivative with a canary in the policy, its "
                 "files' output sizes, check pass rate and render time per file, stable vs "
                 "canary on the same files.")
def rollout_report():
    rollout_report_op()


class CollectConfig(Config):
    dry_run: bool = Field(default=True, description="Only list what would be removed.")


@op(description="Remove derivatives of specs that neither the policy nor the catalog uses.")
def collect_derivatives_op(context: OpExecutionContext, config: CollectConfig,
                           storage: MediaStorage, policy: PolicyResource) -> None:
    store, rules = storage.store(), policy.for_run(storage, context.run.run_id)
    keep = referenced_hashes(rules, content_view(read_catalog(store, columns=STALE_COLUMNS)))
    found = unreferenced_derivatives(store, keep)
    rows = [{"spec": spec, "files": len(keys), "bytes": sum(store.size(k) for k in keys)}
            for spec, keys in sorted(found.items())]
    if not config.dry_run and found:
        for keys in found.values():
            for key in keys:
                store.delete(key)
        append(store, [audit_record("collect_derivatives", "-", source=row["spec"],
                                    reason=f"{row['files']} files, {row['bytes']} bytes: "
                                           "spec no longer used",
                                    actor="collect_derivatives", run_id=context.run.run_id,
                                    now=datetime.now(UTC)) for row in rows])
    context.add_output_metadata({
        "dry_run": config.dry_run, "specs": len(rows),
        "files": sum(r["files"] for r in rows), "bytes": sum(r["bytes"] for r in rows),
        "unreferenced": table(rows, [("spec", "string"), ("files", "int"), ("bytes", "int")]),
    })
    verb = "would remove" if config.dry_run else "removed"
    context.log.info(f"{verb} {sum(r['files'] for r in rows)} derivatives of {len(rows)} "
                     "unused specs")


@job(description="Collect the derivatives of specs no longer referenced by the policy (its "
                 "specs and canaries) or the catalog: dry run by default, `dry_run: false` "
                 "to delete. Run it after a promotion or rollback has been catalogued.")
def collect_derivatives():
    collect_derivatives_op()


rollout_jobs = [rollout_report, collect_derivatives]
