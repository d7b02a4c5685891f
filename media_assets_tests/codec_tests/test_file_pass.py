"""One pass per file: a worker reads a file once and takes it through its whole chain."""

import errno
import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from media_assets.codec.file_pass import FileJob, process_file
from media_assets.core.errors import MachineFault
from media_assets.core.policy import Policy


def photo(width: int = 1600, height: int = 1200, orientation: int = 1) -> bytes:
    image = Image.radial_gradient("L").resize((width, height)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85, exif=exif.tobytes())
    return buffer.getvalue()


def new_file_job(tmp_path: Path, data: bytes, **changes) -> FileJob:
    source = tmp_path / "inbox" / "photo.jpg"
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(data)
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    fields = dict(source=str(source), staging_dir=str(staging), policy=Policy(), intake=True,
                  inbox_root=str(source.parent), metadata_kinds=frozenset({"image"}),
                  derivative_assets=("thumbnails", "previews"))
    return FileJob(**{**fields, **changes})


def test_a_new_photo_goes_from_bytes_to_every_derivative_in_one_call(tmp_path):
    data = photo(orientation=6)
    result = process_file(new_file_job(tmp_path, data), str(tmp_path / "out"))

    assert result.failure is None
    assert result.staged.content_id == hashlib.sha256(data).hexdigest()
    assert Path(result.staged.staged_path).read_bytes() == data
    assert result.kind == "image" and result.metadata["orientation"] == 6
    outputs = {o.derivative: o for o in result.outputs}
    assert set(outputs) == {"thumbnail", "preview"}
    # Upright: the stored pixels are landscape, Orientation 6 turns them to portrait.
    assert (outputs["preview"].width, outputs["preview"].height) == (1080, 1440)
    assert max(outputs["thumbnail"].width, outputs["thumbnail"].height) == 250
    assert all(o.problem is None for o in outputs.values())  # checked from the bytes in hand
    with Image.open(outputs["thumbnail"].path) as im:
        assert im.format == "WEBP"
    assert set(result.stage_ms) == {"originals", "image_metadata", "derivatives"}


def test_a_bad_file_comes_back_with_the_stage_and_reason_instead_of_raising(tmp_path):
    result = process_file(new_file_job(tmp_path, photo()[:2000]), str(tmp_path / "out"))

    assert result.failure.stage == "originals" and result.failure.reason == "truncated"
    assert result.outputs == () and result.metadata is None
    assert Path(result.staged.staged_path).exists()  # the bytes stay for quarantine


def test_a_stored_original_gets_only_what_it_is_missing(tmp_path):
    data = photo()
    original = tmp_path / "original.jpg"
    original.write_bytes(data)
    cid = hashlib.sha256(data).hexdigest()
    preview_hash = Policy().derivative("preview").spec_hash
    job = FileJob(source=str(original), staging_dir=str(tmp_path), policy=Policy(),
                  intake=False, kind="image", content_id=cid,
                  derivative_assets=("thumbnails", "previews"),
                  skip_spec_hashes=frozenset({preview_hash}))

    result = process_file(job, str(tmp_path / "out"))

    assert [o.derivative for o in result.outputs] == ["thumbnail"]
    assert result.metadata is None and result.staged is None


def test_an_output_that_breaks_its_spec_is_reported_not_hidden(tmp_path):
    from media_assets.codec.derivatives.image import image_output_problem
    from media_assets.core.policy import DerivativeSpec

    big = tmp_path / "big.jpg"
    Image.new("RGB", (600, 400)).save(big, "JPEG")
    spec = DerivativeSpec("thumbnail", 250, "webp", 80)
    assert image_output_problem(big, spec) == "format jpeg, spec says webp"
    spec = DerivativeSpec("preview", 250, "jpeg", 80)
    assert image_output_problem(big, spec, full=True) == "long edge 600 > 250"
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8 not really")
    assert image_output_problem(tmp_path / "junk.jpg", spec).startswith("does not decode")


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_rendering_is_the_machines_fault_not_the_files(tmp_path,
                                                                         monkeypatch):
    job = new_file_job(tmp_path, photo())
    monkeypatch.setattr(Image.Image, "save", no_space)
    with pytest.raises(MachineFault, match="ENOSPC"):  # the step fails; nothing quarantined
        process_file(job, str(tmp_path / "out"))


def test_a_full_disk_while_staging_is_the_machines_fault_not_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr("media_assets.codec.intake.os.fsync", no_space)
    with pytest.raises(MachineFault, match="ENOSPC"):
        process_file(new_file_job(tmp_path, photo()), str(tmp_path / "out"))
    assert list((tmp_path / "staging").iterdir()) == []  # no partial copy left


def test_a_decoder_error_is_still_the_files(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("image file is truncated")  # Pillow's errors carry no errno

    job = new_file_job(tmp_path, photo())
    monkeypatch.setattr(Image.Image, "save", broken)
    result = process_file(job, str(tmp_path / "out"))
    assert result.failure is not None and result.failure.stage == "derivatives"
