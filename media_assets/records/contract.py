"""The catalog's schema as a versioned data contract: which changes are backward compatible
(adding a nullable column) and which are not (removing, retyping, tightening nullability).
Pure pyarrow, no Dagster."""

from __future__ import annotations

import pyarrow as pa

from media_assets.records.catalog import ARRIVAL_SCHEMA, SCHEMA_VERSION

# Columns each version added; version 1 is the current schema without all later additions.
ADDED_IN = {
    "2": ("duration_seconds", "video_codec", "audio_codec", "live_photo_id", "name_stem"),
    "3": ("first_cataloged_at",),
}


def contract(version: str = SCHEMA_VERSION) -> pa.Schema:
    """The catalog schema of a contract version (the current one by default)."""
    later = [name for v, names in ADDED_IN.items() if int(v) > int(version) for name in names]
    schema = pa.schema([f for f in ARRIVAL_SCHEMA if f.name not in later])
    return schema.with_metadata({b"media_assets.schema_version": version.encode()})


def schema_version(schema: pa.Schema) -> str | None:
    value = (schema.metadata or {}).get(b"media_assets.schema_version")
    return value.decode() if value else None


def incompatibilities(older: pa.Schema, newer: pa.Schema) -> list[str]:
    """What makes data written with `older` unreadable as `newer` (empty = compatible)."""
    problems = []
    for field in older:
        if field.name not in newer.names:
            problems.append(f"column {field.name!r} was removed")
            continue
        now = newer.field(field.name)
        if not now.type.equals(field.type):
            problems.append(f"column {field.name!r} changed type {field.type} -> {now.type}")
        elif field.nullable and not now.nullable:
            problems.append(f"column {field.name!r} became non-nullable")
    for field in newer:
        if field.name not in older.names and not field.nullable:
            problems.append(f"new column {field.name!r} must be nullable")
    return problems
