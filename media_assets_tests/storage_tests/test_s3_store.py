"""What only S3 has: multipart transfers, server-side encryption, storage classes as tiers,
and the inbox's budgeted scan (SeaweedFS on loopback)."""

import os
import tracemalloc
from pathlib import Path

import pytest

from media_assets.storage.s3 import MiB
from media_assets.storage.s3_inbox import S3Inbox
from media_assets.storage.urls import parse_s3_url
from media_assets_tests.s3_server import BUCKET
from media_assets_tests.storage_tests.conftest import s3_store

pytestmark = pytest.mark.s3


def head(store, key: str) -> dict:
    return store.client.head_object(Bucket=store.bucket, Key=store.prefix + key)


def test_s3_urls_name_a_bucket_and_a_folder_like_prefix():
    assert parse_s3_url("s3://media/store") == ("media", "store/")
    assert parse_s3_url("s3://media/a/b/") == ("media", "a/b/")
    assert parse_s3_url("s3://media") == ("media", "")
    with pytest.raises(ValueError):
        parse_s3_url("/data/store")


def test_large_files_go_up_in_parts_and_come_down_streamed(request, tmp_path: Path):
    store = s3_store(request, tmp_path, part_size=5 * MiB)
    source = tmp_path / "big.mov"
    source.write_bytes(os.urandom(12 * MiB + 123))
    store.put_file("originals/big.mov", source)
    assert head(store, "originals/big.mov")["ETag"].endswith('-3"')  # three parts
    assert store.put_file_if_absent("originals/big-once.mov", source) is True
    assert head(store, "originals/big-once.mov")["ETag"].endswith('-3"')
    assert store.put_file_if_absent("originals/big-once.mov", source) is False
    with store.local_path("originals/big-once.mov") as path:
        assert path.stat().st_size == source.stat().st_size
        assert path.read_bytes() == source.read_bytes()
    assert not list((tmp_path / "scratch").rglob("download*"))  # temp downloads removed
    uploads = store.client.list_multipart_uploads(Bucket=BUCKET, Prefix=store.prefix)
    assert not uploads.get("Uploads")  # the refused upload was aborted, not left behind


def test_a_lost_conditional_multipart_upload_keeps_the_first_object(request, tmp_path: Path):
    store = s3_store(request, tmp_path, part_size=5 * MiB)
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_bytes(b"1" * (6 * MiB))
    second.write_bytes(b"2" * (6 * MiB))
    store.put_bytes("k", b"already here")
    assert store._multipart_if_absent("k", second) is False  # past the HEAD: the server decides
    assert store.read_bytes("k") == b"already here"


def test_server_side_encryption_applies_to_every_write(request, tmp_path: Path):
    store = s3_store(request, tmp_path, sse="AES256", part_size=5 * MiB)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(6 * MiB))
    store.put_bytes("a", b"a")
    store.put_bytes_if_absent("b", b"b")
    store.put_file("c", big)
    store.put_file_if_absent("d", big)
    store.set_tier("a", "cold")
    for key in "abcd":
        assert head(store, key).get("ServerSideEncryption") == "AES256", key
    assert store.read_bytes("a") == b"a"


def test_the_cold_tier_is_a_configurable_storage_class(request, tmp_path: Path):
    store = s3_store(request, tmp_path, cold_storage_class="STANDARD_IA")
    store.client.put_object(Bucket=BUCKET, Key=store.prefix + "x.jpg", Body=b"pixels",
                            ContentType="image/jpeg", Metadata={"origin": "camera"})
    store.set_tier("x.jpg", "cold")
    cold = head(store, "x.jpg")
    assert cold["StorageClass"] == "STANDARD_IA" and store.tier("x.jpg") == "cold"
    assert cold["ContentType"] == "image/jpeg" and cold["Metadata"] == {"origin": "camera"}
    store.set_tier("x.jpg", "hot")
    assert head(store, "x.jpg").get("StorageClass", "STANDARD") == "STANDARD"


def test_the_inbox_scan_resumes_where_the_last_one_stopped_and_wraps(s3_server, tmp_path):
    client, prefix = s3_server.client(), s3_server.new_prefix()
    names = [f"f{i:02}.jpg" for i in range(7)]
    for name in names:
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{name}", Body=b"x")
    inbox = S3Inbox(client, BUCKET, prefix, page_size=2, pages_per_scan=2,
                    scratch_root=tmp_path)
    seen = [e.name for e in inbox.scan()]
    assert seen == names[:4] and inbox.resume_after == "f03.jpg"
    client.delete_object(Bucket=BUCKET, Key=f"{prefix}/f00.jpg")  # claimed and drained
    seen = [e.name for e in inbox.scan(inbox.resume_after)]
    assert seen == names[4:] and inbox.resume_after == ""  # the end: next scan from the start
    assert [e.name for e in inbox.scan(inbox.resume_after)] == names[1:5]


def test_an_inbox_object_is_complete_as_soon_as_it_is_listed(s3_server, tmp_path):
    client, prefix = s3_server.client(), s3_server.new_prefix()
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/a.jpg", Body=b"uploaded")
    inbox = S3Inbox(client, BUCKET, prefix, scratch_root=tmp_path)
    assert [e.complete for e in inbox.list_entries()] == [True]  # no settle time applies


def test_a_replaced_inbox_object_is_not_removed(s3_server, tmp_path):
    client, prefix = s3_server.client(), s3_server.new_prefix()
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/a.jpg", Body=b"first")
    inbox = S3Inbox(client, BUCKET, prefix, scratch_root=tmp_path)
    [entry] = inbox.list_entries()
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/a.jpg", Body=b"other")  # same size
    stale_mtime = entry.mtime - 5
    assert inbox.remove_if_unchanged("a.jpg", entry.size, stale_mtime) is False
    assert inbox.exists("a.jpg")


def test_transfers_hold_a_few_parts_in_memory_never_the_whole_file(request, tmp_path: Path):
    store = s3_store(request, tmp_path, part_size=5 * MiB)
    source = tmp_path / "long.mov"
    source.write_bytes(os.urandom(40 * MiB))
    inbox = S3Inbox(store.client, BUCKET, store.prefix, scratch_root=tmp_path)

    def peak_of(action) -> float:
        tracemalloc.start()
        try:
            action()
            return tracemalloc.get_traced_memory()[1] / MiB
        finally:
            tracemalloc.stop()

    def download(opener) -> None:
        with opener() as path:
            assert path.stat().st_size == 40 * MiB

    peaks = {
        "put_file": peak_of(lambda: store.put_file("a.mov", source)),
        "put_file_if_absent": peak_of(lambda: store.put_file_if_absent("b.mov", source)),
        "local_path": peak_of(lambda: download(lambda: store.local_path("b.mov"))),
        "inbox local_path": peak_of(lambda: download(lambda: inbox.local_path("a.mov"))),
        "read_header": peak_of(lambda: inbox.read_header("a.mov", 65536)),
    }
    assert all(peak < 16 for peak in peaks.values()), peaks  # 40 MiB file, 5 MiB parts
