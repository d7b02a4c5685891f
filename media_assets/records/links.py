"""Files that belong together: a live photo's still and movie (one content identifier in both
files' metadata) and a sidecar (XMP) next to the file it describes (same folder and stem).

Links are derived when the catalog is read, from two columns of each row, so they hold
whatever order or lane the partners arrive in. Pure polars, no Dagster."""

from __future__ import annotations

import posixpath
from typing import Any

import polars as pl

LIVE_PHOTO_TAG = "com.apple.quicktime.content.identifier"
SIDECAR_SUFFIXES = (".xmp",)


def name_stem(source_name: str) -> str:
    """`folder/IMG_0001` for `folder/IMG_0001.JPG`, `folder/IMG_0001.xmp` and
    `folder/IMG_0001.jpg.xmp` (darktable names sidecars after the whole file name)."""
    stem = source_name
    for _ in range(2):
        root, ext = posixpath.splitext(stem)
        if not ext or "/" in ext:
            break
        stem = root
        if ext.lower() not in SIDECAR_SUFFIXES:
            break
    return stem.lower()


def live_photo_id(metadata: dict[str, Any]) -> str | None:
    """The content identifier Apple writes into both halves of a live photo."""
    tags = metadata.get("tags") or {}
    return metadata.get("content_identifier") or tags.get(LIVE_PHOTO_TAG) or None


def with_links(view: pl.DataFrame) -> pl.DataFrame:
    """Add `linked_content_ids`: the other contents paired with each row's content."""
    empty = pl.lit([], dtype=pl.List(pl.String))
    if view.is_empty() or "live_photo_id" not in view.columns:
        return view.with_columns(empty.alias("linked_content_ids"))
    media = pl.col("media_kind") != "sidecar"
    live = (view.filter(pl.col("live_photo_id").is_not_null())
            .select("content_id", pl.col("live_photo_id").alias("key")))
    stems = view.filter(pl.col("name_stem").is_not_null()).select(
        "content_id", pl.col("name_stem").alias("key"), media.alias("is_media"))
    sidecars = stems.filter(~pl.col("is_media")).select("content_id", "key")
    files = stems.filter(pl.col("is_media")).select("content_id", "key")
    # Only sidecar x media pairs are joined: many files sharing a stem cost nothing extra.
    one_way = sidecars.join(files, on="key", suffix="_other")
    sidecar_pairs = pl.concat([
        one_way.select("content_id", "content_id_other"),
        one_way.select(pl.col("content_id_other").alias("content_id"),
                       pl.col("content_id").alias("content_id_other"))])
    pairs = pl.concat([
        live.join(live, on="key", suffix="_other").select("content_id", "content_id_other"),
        sidecar_pairs.select("content_id", "content_id_other"),
    ]).filter(pl.col("content_id") != pl.col("content_id_other")).unique()
    links = pairs.group_by("content_id").agg(
        pl.col("content_id_other").sort().alias("linked_content_ids"))
    return (view.join(links, on="content_id", how="left")
            .with_columns(pl.col("linked_content_ids").fill_null(empty)))
