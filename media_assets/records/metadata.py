"""Extracted metadata in the store: one JSON per content and extractor version."""

from __future__ import annotations

import json
from typing import Any

from media_assets.core.store import ObjectStore
from media_assets.records.layout import metadata_key

# Extractor versions name the metadata folders: a new version re-extracts into a new folder.
METADATA_VERSIONS = {"image": "image-v1", "video": "video-v1", "audio": "audio-v1"}


def metadata_version(kind: str) -> str:
    return METADATA_VERSIONS[kind]


def save_metadata(store: ObjectStore, content_id: str, kind: str, data: dict[str, Any]) -> None:
    store.put_bytes(metadata_key(content_id, METADATA_VERSIONS[kind]),
                    json.dumps(data, sort_keys=True).encode())


def load_metadata(store: ObjectStore, content_id: str, version: str) -> dict[str, Any]:
    """A content's metadata under an extractor version ({} when none was extracted)."""
    key = metadata_key(content_id, version)
    return json.loads(store.read_bytes(key)) if store.exists(key) else {}
