"""Cost accounting: a step's store traffic and each file's worker time are metered, the
step's overhead is shared by its files, a day is priced from the policy's price table, and
budgets alert once per level and may hold a folder for the rest of the day."""

from datetime import UTC, datetime

import polars as pl
import pytest

from media_assets.core.policy import Costs, Prices
from media_assets.operations.control import budget_paused_folders, note_budgets
from media_assets.operations.usage import (
    MeteredStore,
    budget_statuses,
    price_day,
    read_usage,
    save_usage,
    source_folder,
    stored_bytes,
)
from media_assets.storage import LocalObjectStore

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    return MeteredStore(LocalObjectStore(tmp_path / "store"))


def test_the_folder_is_the_inbox_top_level_folder():
    assert source_folder("agency/2026/a.jpg") == "agency"
    assert source_folder("a.jpg") == ""


def test_store_traffic_inside_a_file_block_is_that_files(store, tmp_path):
    meter = store.meter
    meter.file("a" * 64, "image", "agency/a.jpg").add(cpu_seconds=0.5, wall_seconds=0.6)
    meter.file("b" * 64, "video", "b.mp4")
    with meter.attributing("a" * 64):
        store.put_bytes("derived/a.webp", b"x" * 1000)
        store.read_bytes("derived/a.webp")
    store.put_bytes("manifests/batch.json", b"y" * 200)  # step overhead: shared by both

    rows = {r["content_id"][0]: r for r in meter.rows("thumbnails", "B1", "run-1", NOW)}
    assert rows["a"]["bytes_written_hot"] == 1000 + 100
    assert rows["a"]["bytes_read"] == 1000
    assert rows["b"]["bytes_written_hot"] == 100
    assert rows["a"]["requests"] == 2 + 1 and rows["b"]["requests"] == 1
    assert rows["a"]["cpu_seconds"] >= 0.5
    assert rows["a"]["wall_seconds"] == pytest.approx(0.6)
    assert rows["a"]["folder"] == "agency" and rows["b"]["folder"] == ""
    assert rows["b"]["media_kind"] == "video"


def test_moving_to_the_cold_tier_counts_as_bytes_written_cold(store):
    store.inner.put_bytes("originals/x", b"z" * 500)
    store.set_tier("originals/x", "cold")
    store.set_tier("originals/x", "cold")  # already there: nothing moves
    [row] = store.meter.rows("apply_retention", "-", "run-1", NOW)
    assert row["bytes_written_cold"] == 500 and row["content_id"] == ""


def test_records_round_trip_by_day_and_are_not_counted_as_usage(store):
    rows = store.meter.rows("catalog", "B1", "run-1", NOW)
    save_usage(store, rows, NOW)
    assert store.meter.overhead.requests == 0
    assert read_usage(store, "2026-11-27").height == 1
    assert read_usage(store, "2026-11-28").height == 0


def records(**overrides):
    base = {"recorded_at": NOW.isoformat(), "asset": "thumbnails", "batch_key": "B1",
            "run_id": "r", "content_id": "c1", "media_kind": "image", "folder": "agency",
            "cpu_seconds": 3600.0, "wall_seconds": 10.0, "bytes_read": 10,
            "bytes_written_hot": 20, "bytes_written_cold": 0, "requests": 2000}
    return pl.DataFrame([{**base, **overrides}])


def test_a_day_is_priced_from_the_price_table():
    prices = Prices(cpu_hour=0.10, gb_month={"hot": 30.0, "cold": 3.0}, per_1000_requests=0.01)
    held = pl.DataFrame({"media_kind": ["image", "image"], "folder": ["agency", "agency"],
                         "tier": ["hot", "cold"], "bytes": [10**9, 2 * 10**9]})
    priced = price_day(records(), held, prices, days_in_month=30)
    work = priced.filter(pl.col("asset") == "thumbnails").row(0, named=True)
    assert work["files"] == 1
    assert work["cost_cpu"] == pytest.approx(0.10)
    assert work["cost_requests"] == pytest.approx(0.02)
    storage = priced.filter(pl.col("asset") == "storage").row(0, named=True)
    assert storage["stored_bytes"] == 3 * 10**9
    assert storage["cost_storage"] == pytest.approx(1.0 + 0.2)  # a 30th of a month each
    assert priced["cost"].sum() == pytest.approx(0.12 + 1.2)


def test_storage_held_comes_from_the_catalog_view():
    view = pl.DataFrame({
        "content_id": ["a", "b", "c"], "status": ["ok", "ok", "ok"],
        "media_kind": ["image", "image", "video"], "tier": ["hot", None, "cold"],
        "bytes": [100, 200, 1000],
        "source_names": [["agency/a.jpg"], ["b.jpg"], ["agency/c.mp4"]],
        "first_arrived_at": [NOW, NOW, datetime(2026, 12, 1, tzinfo=UTC)],
        "derivatives": [[{"name": "thumbnail", "bytes": 7}], [{"name": "thumbnail", "bytes": 5}],
                        []],
    })
    held = stored_bytes(view, until=datetime(2026, 11, 28, tzinfo=UTC))
    assert held.sort("folder", "bytes").to_dicts() == [
        {"media_kind": "image", "folder": "", "tier": "hot", "bytes": 5},  # original purged
        {"media_kind": "image", "folder": "agency", "tier": "hot", "bytes": 107},
    ]


def test_budgets_warn_at_80_percent_and_are_over_at_100():
    priced = pl.DataFrame({"folder": ["agency", "press"], "cost": [0.85, 1.5]})
    costs = Costs(daily_budget=10.0, folder_budgets={"agency": 1.0, "press": 1.0, "x": 1.0})
    levels = {s.scope: s.level for s in budget_statuses(priced, costs)}
    assert levels == {"all": "ok", "agency": "warning", "press": "over", "x": "ok"}


def test_each_level_alerts_once_a_day_and_over_budget_folders_are_held(store):
    costs = Costs(folder_budgets={"agency": 1.0})
    sent = []

    class Notifier:
        def send(self, alert):
            sent.append(alert)
            return True

    def evaluate(spent, day="2026-11-27"):
        statuses = budget_statuses(pl.DataFrame({"folder": ["agency"], "cost": [spent]}), costs)
        return note_budgets(store, day, statuses, True, Notifier(), NOW)

    evaluate(0.5)
    evaluate(0.9)
    evaluate(0.95)
    assert [a.severity for a in sent] == ["warning"]
    assert budget_paused_folders(store, "2026-11-27") == {}
    evaluate(1.2)
    assert [a.severity for a in sent] == ["warning", "error"]
    assert "agency" in budget_paused_folders(store, "2026-11-27")
    assert budget_paused_folders(store, "2026-11-28") == {}  # a new day lifts the hold
    evaluate(0.5)  # the budget was raised: the hold lifts, no new alert
    assert budget_paused_folders(store, "2026-11-27") == {} and len(sent) == 2
