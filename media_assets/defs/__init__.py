"""Thin Dagster wiring: assets, checks, sensors, jobs and resources over the pure core."""
