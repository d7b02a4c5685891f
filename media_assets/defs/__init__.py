"""Thin Dagster wiring: assets, checks, sensors, jobs and resources over the pure core."""

import warnings

from dagster import BetaWarning, PreviewWarning

from media_assets.defs.instance_startup import cache_dagster_migration_scripts

cache_dagster_migration_scripts()  # every tick's and run's SQLite instance starts faster

# APIs we use knowingly, pinned to one Dagster release set (pyproject.toml): one batch per run
# (`backfill_policy`) and checks reported per batch (`partitions_def` on a check). Their
# maturity warnings would greet every start of the UI, so they are silenced here, by name.
warnings.filterwarnings("ignore", category=BetaWarning,
                        message="Parameter `backfill_policy` of function `asset`")
warnings.filterwarnings("ignore", category=PreviewWarning,
                        message="Specifying a partitions_def on an AssetCheckSpec")
