"""Every storage contract test runs on local folders and on S3 (SeaweedFS on loopback)."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from media_assets.storage import LocalInbox, LocalObjectStore
from media_assets.storage.s3 import S3ObjectStore
from media_assets.storage.s3_inbox import S3Inbox
from media_assets_tests.s3_server import BUCKET

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3)]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


def s3_store(request, tmp_path: Path, **options: Any) -> S3ObjectStore:
    server = request.getfixturevalue("s3_server")
    return S3ObjectStore(server.client(), BUCKET, server.new_prefix(),
                         scratch_root=tmp_path / "scratch", **options)


@pytest.fixture
def store(backend: str, request, tmp_path: Path):
    if backend == "local":
        return LocalObjectStore(tmp_path / "store")
    return s3_store(request, tmp_path)


@dataclass
class DropBox:
    """An inbox and a way to drop a file into it, whatever the backend."""

    inbox: Any
    drop: Callable[[str, bytes], None]


@pytest.fixture
def dropbox(backend: str, request, tmp_path: Path) -> DropBox:
    if backend == "local":
        root = tmp_path / "inbox"

        def write(name: str, data: bytes) -> None:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)

        return DropBox(LocalInbox(root), write)
    server = request.getfixturevalue("s3_server")
    client, prefix = server.client(), server.new_prefix()
    inbox = S3Inbox(client, BUCKET, prefix, scratch_root=tmp_path / "scratch")
    return DropBox(inbox, lambda name, data: client.put_object(
        Bucket=BUCKET, Key=f"{prefix}/{name}", Body=data))
