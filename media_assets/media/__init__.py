"""Pure media core: probing, validation, derivatives, catalog. Never imports dagster."""
