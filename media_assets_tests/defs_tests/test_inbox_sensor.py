"""The inbox sensor: cheap listing, settle time, lanes from headers, adaptive batches,
claimed files excluded, idempotent run keys, and a cursor that stays tiny."""


import pytest
from dagster import SkipReason

from media_assets.core.policy import Policy
from media_assets.defs.partitions import LANE_TAG
from media_assets.operations.run_limits import MAX_RUNTIME_TAG, max_runtime_seconds
from media_assets.records.manifest import load_manifest, open_batch_keys
from media_assets_tests.defs_tests.conftest import ON_BOTH_BACKENDS


def test_a_file_still_being_written_waits_for_the_settle_time(install, jpeg_header):
    install.drop("fresh.jpg", jpeg_header, age=0)
    result = install.tick()
    assert isinstance(result, SkipReason)
    assert "1 files still being written" in result.skip_message


@ON_BOTH_BACKENDS
def test_a_lone_settled_file_gets_its_own_batch_with_run_key_and_lane(install, jpeg_header):
    install.drop("one.jpg", jpeg_header, age=30)
    result = install.tick()
    [request] = result.run_requests
    assert request.run_key == request.partition_key
    # a new upload: its lane, Dagster's default priority (bulk work queues behind it), and
    # the time bound run monitoring holds it to
    assert request.tags == {LANE_TAG: "image", "media_assets/work": "upload",
                            MAX_RUNTIME_TAG: str(max_runtime_seconds(Policy(), "image", 1))}
    manifest = load_manifest(install.store, request.partition_key)
    assert [s["inbox"] for s in manifest["sources"]] == ["one.jpg"]


@ON_BOTH_BACKENDS
def test_batches_close_by_count(install, jpeg_header):
    install.set_policy(batching={"max_files": 3, "max_wait_seconds": 3600})
    for i in range(7):
        install.drop(f"p{i}.jpg", jpeg_header + bytes([i]), age=30)
    result = install.tick()
    sizes = [len(load_manifest(install.store, r.partition_key)["sources"])
             for r in result.run_requests]
    assert sizes == [3, 3]  # the seventh waits for company or for max_wait


def test_batches_close_by_estimated_work_and_record_it(install, jpeg_header, capfd):
    install.set_policy(batching={"target_batch_seconds": 0.01, "max_wait_seconds": 3600})
    for i in range(5):  # a 64 x 48 JPEG is ~4 ms of work: three reach 0.01 s
        install.drop(f"w{i}.jpg", jpeg_header + bytes([i]), age=30)
    result = install.tick()
    manifests = [load_manifest(install.store, r.partition_key) for r in result.run_requests]
    assert [len(m["sources"]) for m in manifests] == [3]  # two wait for company
    assert [m["closed_because"] for m in manifests] == ["full"]
    assert 0.01 <= manifests[0]["estimated_seconds"] < 0.02
    assert "estimated work 0.01 CPU-s" in capfd.readouterr().err


def test_batches_close_by_age(install, jpeg_header):
    install.set_policy(batching={"max_files": 100, "max_wait_seconds": 120})
    install.drop("young.jpg", jpeg_header, age=30)
    assert isinstance(install.tick(), SkipReason)
    install.drop("old.jpg", jpeg_header + b"x", age=200)
    [request] = install.tick().run_requests
    assert len(load_manifest(install.store, request.partition_key)["sources"]) == 2


def test_over_the_daily_budget_a_trickle_waits_and_the_tick_says_why(install, jpeg_header):
    install.set_policy(batching={"daily_partition_budget": 0, "budget_burst": 0,
                                 "over_budget_max_wait_seconds": 100})
    install.drop("a.jpg", jpeg_header, age=30)
    held = install.tick()
    assert isinstance(held, SkipReason)
    assert "1 files waiting" in held.skip_message
    assert "daily partition budget" in held.skip_message
    install.drop("a.jpg", jpeg_header, age=150)  # waited past the over-budget bound
    assert len(install.tick().run_requests) == 1


@ON_BOTH_BACKENDS
def test_batch_keys_number_the_days_batches_from_one(install, jpeg_header):
    install.drop("a.jpg", jpeg_header, age=30)
    [request] = install.tick().run_requests
    assert request.partition_key.endswith("-0001")
    install.drop("b.jpg", jpeg_header + b"b", age=30)
    [request] = install.tick().run_requests
    assert request.partition_key.endswith("-0002")


@ON_BOTH_BACKENDS
def test_claimed_files_are_not_batched_twice(install, jpeg_header):
    install.drop("a.jpg", jpeg_header, age=30)
    assert len(install.tick().run_requests) == 1
    again = install.tick()
    assert isinstance(again, SkipReason)
    assert "1 files held by open batches" in again.skip_message


@ON_BOTH_BACKENDS
def test_lanes_come_from_content_even_when_the_extension_lies(install, jpeg_header):
    install.drop("holiday.png", jpeg_header, age=30)  # really a JPEG
    install.drop("clip.jpg", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\0" * 99,
                 age=30)
    lanes = sorted(r.tags[LANE_TAG] for r in install.tick().run_requests)
    assert lanes == ["av", "image"]


def test_the_cursor_stays_small_however_many_files_pass(install, jpeg_header):
    install.set_policy(batching={"max_files": 50})
    for i in range(120):
        install.drop(f"many/{i:03d}.jpg", jpeg_header + i.to_bytes(2, "big"), age=30)
    install.tick()
    assert len(install.cursor) < 64


@pytest.mark.s3
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_an_s3_inbox_is_scanned_a_few_pages_a_tick_resuming_where_the_last_tick_stopped(
        install, jpeg_header):
    install.inbox_options = {"s3_page_size": 2, "s3_pages_per_tick": 1}
    # No run processes these batches: they stay open, and the lane would hold the next one.
    install.set_policy(batching={"open_batches_per_lane": 100})
    for name in "abcde":
        install.drop(f"{name}.jpg", jpeg_header + name.encode())

    def batched() -> list[str]:
        result = install.tick()
        return sorted(s["inbox"] for r in getattr(result, "run_requests", [])
                      for s in load_manifest(install.store, r.partition_key)["sources"])

    assert batched() == ["a.jpg", "b.jpg"]
    assert batched() == ["c.jpg", "d.jpg"]  # not the claimed a and b again
    assert batched() == ["e.jpg"]  # the end: the next tick starts from the beginning
    install.drop("0.jpg", jpeg_header + b"0")
    assert batched() == ["0.jpg"]  # a, b... are claimed: never batched twice


@ON_BOTH_BACKENDS
def test_a_batch_written_but_never_registered_is_recovered(install, jpeg_header):
    install.drop("a.jpg", jpeg_header, age=30)
    result = install.tick()
    key = result.run_requests[0].partition_key
    install.instance.delete_dynamic_partition("batches", key)  # as if the tick died half-way
    recovered = install.tick()
    assert [r.run_key for r in recovered.run_requests] == [key]
    assert open_batch_keys(install.store) == [key]


def test_unreadable_files_and_special_files_never_stop_the_inbox(install, jpeg_header,
                                                                 monkeypatch):
    import os

    from media_assets.storage.local import LocalInbox

    os.mkfifo(install.inbox / "pipe.jpg")  # reading it would block forever
    (install.inbox / "loop.jpg").symlink_to(install.inbox / "loop.jpg")
    install.drop("locked.jpg", jpeg_header)
    install.drop("good.jpg", jpeg_header + b"!")
    real_read = LocalInbox.read_header

    def read_header(self, name, size):
        if name == "locked.jpg":
            raise PermissionError(13, "Permission denied")
        return real_read(self, name, size)

    monkeypatch.setattr(LocalInbox, "read_header", read_header)
    result = install.tick()
    [request] = result.run_requests
    sources = load_manifest(install.store, request.partition_key)["sources"]
    assert [s["inbox"] for s in sources] == ["good.jpg"]
    again = install.tick()
    assert "1 files unreadable, left in the inbox (e.g. locked.jpg: Permission denied)" in (
        again.skip_message)


def test_a_file_its_batch_could_not_read_waits_until_it_changes(install, jpeg_header):
    from media_assets.records.manifest import mark_unreadable

    path = install.drop("flaky.jpg", jpeg_header)
    stat = path.stat()
    mark_unreadable(install.store, "flaky.jpg", stat.st_size, stat.st_mtime, "EIO")
    held = install.tick()
    assert isinstance(held, SkipReason)
    assert "flaky.jpg: could not be read by its last batch" in held.skip_message
    install.drop("flaky.jpg", jpeg_header + b"rewritten")  # changed: worth another try
    assert len(install.tick().run_requests) == 1


def test_a_file_name_that_is_not_utf8_is_reported_not_batched(install, jpeg_header):
    import os

    os.close(os.open(os.fsencode(install.inbox) + b"/caf\xe9.jpg", os.O_CREAT | os.O_WRONLY))
    install.age_inbox()
    install.drop("fine.jpg", jpeg_header)
    result = install.tick()
    [request] = result.run_requests
    assert [s["inbox"] for s in load_manifest(install.store, request.partition_key)["sources"]
            ] == ["fine.jpg"]
    assert "the file name is not UTF-8, rename it" in install.tick().skip_message


def test_an_open_batch_whose_run_never_came_is_asked_for_again(install, jpeg_header):
    import json

    install.drop("a.jpg", jpeg_header)
    [request] = install.tick().run_requests
    key = f"batches/{request.partition_key}.json"
    manifest = json.loads(install.store.read_bytes(key))
    manifest["created_at"] = "2000-01-01T00:00:00+00:00"  # long ago, still open, no run
    install.store.put_bytes(key, json.dumps(manifest).encode())
    again = install.tick()
    assert [r.run_key for r in again.run_requests] == [request.run_key]
    assert again.dynamic_partitions_requests == []  # already registered


def test_an_idle_tick_watches_the_inbox_and_launches_a_file_arriving_meanwhile(
        install, jpeg_header):
    import os
    import threading
    import time

    install.set_policy(batching={"watch_seconds": 3, "watch_poll_seconds": 0.1})

    def upload() -> None:  # half a second into the tick, a finished upload is renamed in
        time.sleep(0.5)
        part = install.inbox / ".late.jpg.part"
        part.write_bytes(jpeg_header)
        os.utime(part, (time.time() - 60, time.time() - 60))
        part.rename(install.inbox / "late.jpg")

    uploader = threading.Thread(target=upload)
    started = time.monotonic()
    uploader.start()
    result = install.tick()
    uploader.join()
    [request] = result.run_requests
    assert [s["inbox"] for s in load_manifest(install.store, request.partition_key)[
        "sources"]] == ["late.jpg"]
    assert time.monotonic() - started < 2.5  # not the whole watch, and not the next tick


def test_an_idle_tick_that_sees_nothing_arrive_ends_after_its_watch(install):
    import time

    install.set_policy(batching={"watch_seconds": 1, "watch_poll_seconds": 0.1})
    started = time.monotonic()
    result = install.tick()
    assert isinstance(result, SkipReason) and "nothing new" in result.skip_message
    assert 0.8 <= time.monotonic() - started < 3
