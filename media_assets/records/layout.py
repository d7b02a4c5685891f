"""Where everything lives in the store: keys are derived from content ids, never names."""

from __future__ import annotations

import hashlib
from typing import Any


def _shard(content_id: str) -> str:
    return f"{content_id[:2]}/{content_id[2:4]}/{content_id}"


def original_key(content_id: str, extension: str) -> str:
    return f"originals/{_shard(content_id)}.{extension}"


def first_arrival_key(content_id: str) -> str:
    """Names the batch that first stored a content (so a retried batch is no 'duplicate')."""
    return f"arrivals/{_shard(content_id)}"


def derivative_key(name: str, spec_hash: str, content_id: str, extension: str) -> str:
    return f"derived/{name}/{spec_hash}/{_shard(content_id)}.{extension}"


def spec_output_key(spec: Any, content_id: str) -> str:
    """Where the derivative `spec` (a DerivativeSpec) of a content is stored."""
    return derivative_key(spec.name, spec.spec_hash, content_id, spec.extension)


def metadata_key(content_id: str, extractor_version: str) -> str:
    return f"metadata/{extractor_version}/{_shard(content_id)}.json"


def quarantine_blob_key(content_id: str) -> str:
    return f"quarantine/blobs/{_shard(content_id)}"


def quarantine_record_key(batch_key: str, content_id: str, source_name: str) -> str:
    """One record per (content, source name): the same bad bytes under two names keep both."""
    name_id = hashlib.sha256(source_name.encode()).hexdigest()[:8]
    return f"quarantine/records/{batch_key}/{content_id}.{name_id}.json"


def batch_manifest_key(batch_key: str) -> str:
    return f"batches/{batch_key}.json"


def open_batch_marker_key(batch_key: str) -> str:
    return f"batches/open/{batch_key}"


OPEN_BATCHES_PREFIX = "batches/open/"
CATALOG_FRAGMENTS_PREFIX = "catalog/fragments/"
CATALOG_INDEX_PREFIX = "catalog/index/"


def catalog_fragment_key(batch_key: str) -> str:
    return f"{CATALOG_FRAGMENTS_PREFIX}{batch_key}.parquet"


def contact_sheet_key(batch_key: str, asset_name: str, page: int) -> str:
    """A page of a batch's contact sheet for one asset (thumbnails, poster)."""
    return f"contact_sheets/{batch_key}/{asset_name}/page-{page:03d}.webp"
