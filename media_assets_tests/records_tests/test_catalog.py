"""The catalog: fragments per batch, a derived per-content view, compaction, lookup."""

from datetime import UTC, datetime, timedelta

import polars as pl

from media_assets.core.policy import DerivativeSpec, Policy
from media_assets.records.catalog import (
    compact,
    content_view,
    fragment_bytes,
    fragment_key,
    lookup,
    read_arrivals,
    stale_derivatives,
)
from media_assets.storage import LocalObjectStore

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
POLICY = Policy()


def row(cid: str, name: str, batch: str, at: datetime, thumb_hash: str | None = None) -> dict:
    thumb = POLICY.derivative("thumbnail")
    return {
        "content_id": cid, "source_name": name, "batch_key": batch, "arrived_at": at,
        "cataloged_at": at, "status": "ok", "duplicate": False, "media_kind": "image",
        "derivatives": [{"name": "thumbnail", "key": f"derived/{cid}.webp",
                         "spec_hash": thumb_hash or thumb.spec_hash, "width": 250,
                         "height": 200, "bytes": 900}],
    }


def write(store: LocalObjectStore, batch: str, rows: list[dict], at: datetime) -> None:
    store.put_bytes(fragment_key(batch, at, "run-0000"), fragment_bytes(rows))


def test_rematerialising_a_batch_replaces_its_rows_instead_of_adding(tmp_path):
    store = LocalObjectStore(tmp_path)
    write(store, "b1", [row("a" * 64, "x.jpg", "b1", T0)], T0)
    write(store, "b1", [row("a" * 64, "x.jpg", "b1", T0)], T0 + timedelta(seconds=1))
    assert read_arrivals(store).height == 1


def test_the_content_view_lists_every_name_a_content_arrived_under(tmp_path):
    store = LocalObjectStore(tmp_path)
    write(store, "b1", [row("a" * 64, "x.jpg", "b1", T0)], T0)
    write(store, "b2", [row("a" * 64, "copy-of-x.jpg", "b2", T0 + timedelta(hours=1)),
                        row("b" * 64, "y.jpg", "b2", T0)], T0 + timedelta(hours=1))
    view = content_view(read_arrivals(store))
    assert view.height == 2
    first = view.filter(pl.col("content_id") == "a" * 64).row(0, named=True)
    assert first["source_names"] == ["copy-of-x.jpg", "x.jpg"]
    assert first["batch_keys"] == ["b1", "b2"] and first["arrivals"] == 2


def test_compaction_covers_fragments_and_later_writes_still_win(tmp_path):
    store = LocalObjectStore(tmp_path)
    write(store, "b1", [row("a" * 64, "x.jpg", "b1", T0)], T0)
    write(store, "b2", [row("b" * 64, "y.jpg", "b2", T0)], T0)
    manifest = compact(store, T0 + timedelta(minutes=5))
    assert manifest["rows"] == 2 and set(manifest["fragments"]) == {"b1", "b2"}
    write(store, "b2", [row("b" * 64, "renamed.jpg", "b2", T0)], T0 + timedelta(minutes=6))
    write(store, "b3", [row("c" * 64, "z.jpg", "b3", T0)], T0 + timedelta(minutes=6))
    names = sorted(read_arrivals(store)["source_name"].to_list())
    assert names == ["renamed.jpg", "x.jpg", "z.jpg"]


def test_lookup_by_content_id_prefix_or_source_name(tmp_path):
    store = LocalObjectStore(tmp_path)
    write(store, "b1", [row("ab" * 32, "trips/x.jpg", "b1", T0),
                        row("cd" * 32, "y.jpg", "b1", T0)], T0)
    arrivals = read_arrivals(store)
    assert lookup(arrivals, "abababab")["source_name"].to_list() == ["trips/x.jpg"]
    assert lookup(arrivals, "x.jpg")["content_id"].to_list() == ["ab" * 32]
    assert lookup(arrivals, "trips/x.jpg").height == 1
    assert lookup(arrivals, "nothing").height == 0


def test_staleness_is_answered_from_the_spec_hashes_in_the_catalog(tmp_path):
    store = LocalObjectStore(tmp_path)
    write(store, "b1", [row("a" * 64, "x.jpg", "b1", T0)], T0)
    write(store, "b2", [row("b" * 64, "y.jpg", "b2", T0, thumb_hash="0ld0ld0ld0ld")], T0)
    stale = stale_derivatives(read_arrivals(store), POLICY)
    by_state = {(r["batch_key"], r["derivative"], r["state"]) for r in stale.iter_rows(named=True)}
    assert ("b2", "thumbnail", "stale") in by_state
    assert ("b1", "thumbnail", "stale") not in by_state
    assert ("b1", "preview", "missing") in by_state  # the rows above carry no preview


def test_a_new_spec_makes_only_that_derivative_stale(tmp_path):
    store = LocalObjectStore(tmp_path)
    write(store, "b1", [row("a" * 64, "x.jpg", "b1", T0)], T0)
    bigger = Policy(derivatives=(DerivativeSpec("thumbnail", 320, "webp", 80),
                                 POLICY.derivative("preview")))
    stale = stale_derivatives(read_arrivals(store), bigger)
    assert set(stale.filter(pl.col("state") == "stale")["derivative"]) == {"thumbnail"}
