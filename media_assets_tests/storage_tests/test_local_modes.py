"""Every object in a local store has the same file mode, whichever way it was written
(atomic bytes, a copied file, put-if-absent, a staged original): an archive's manifest is
as readable as its Parquet files."""

import os
import tempfile
from pathlib import Path

from media_assets.storage import LocalObjectStore
from media_assets.storage.local import FILE_MODE


def mode(store: LocalObjectStore, key: str) -> int:
    return os.stat(store.describe(key)).st_mode & 0o777


def test_every_way_of_writing_gives_the_same_mode(tmp_path: Path):
    store = LocalObjectStore(tmp_path / "store")
    source = tmp_path / "source.bin"
    source.write_bytes(b"data")
    store.put_bytes("archive/manifest.json", b"{}")
    store.put_file("archive/part.parquet", source)
    store.put_bytes_if_absent("audit/000000001.jsonl", b"{}\n")
    fd, staged = tempfile.mkstemp(dir=store.staging_dir())  # as intake stages an original
    os.close(fd)
    assert store.put_file_if_absent("originals/ab/abc.jpg", Path(staged))
    modes = {mode(store, key) for key in ("archive/manifest.json", "archive/part.parquet",
                                          "audit/000000001.jsonl", "originals/ab/abc.jpg")}
    assert modes == {FILE_MODE}  # what open() gives under the umask (0644 under 022)
