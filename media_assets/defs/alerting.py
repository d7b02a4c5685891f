"""Failed runs become alerts: the audit log records them and the webhook (when configured)
says which job, which batch and why."""

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from media_assets.defs.resources import AlertNotifier, MediaStorage
from media_assets.operations.alerts import Alert, raise_alert


# Each tick builds a Dagster instance (~0.2 s of CPU on SQLite): every 30 s, not 10, keeps that
# off the cores the media work needs; an alert comes at most 30 s after the failure.
@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                    description="Alerts on every failed run of this code location.")
def run_failure_alerts(context: RunFailureSensorContext, storage: MediaStorage,
                       alerts: AlertNotifier) -> None:
    run = context.dagster_run
    error = context.failure_event.message or "run failed"
    details = {"job": run.job_name, "run_id": run.run_id,
               "partition": run.tags.get("dagster/partition", "-")}
    context.log.error(f"ALERT run {run.run_id} of {run.job_name} failed: {error}")
    raise_alert(storage.store(), Alert("run_failure", f"{run.job_name} failed: {error}",
                                       details=details),
                alerts.notifier(), actor="run_failure_alerts", run_id=run.run_id)
