"""Durable records in the store: layout, batch manifests, quarantine, catalog, archive,
retention, erasure, audit and the catalog contract. Never imports dagster."""
