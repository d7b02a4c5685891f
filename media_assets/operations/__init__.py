"""Operating the pipeline: batching, circuit breaker, alerts, usage, rollout, rebuild and
replay requests, switches, housekeeping, pod config. Never imports dagster."""
