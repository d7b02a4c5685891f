"""The sample media are the same bytes every time: `make dev` on two machines, or twice,
yields the same content ids (no muxer writes a random id, a date or a library version)."""

import hashlib

from media_assets.samples import main


def digests(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_samples_are_byte_for_byte_the_same_every_time(tmp_path, capsys):
    main([str(tmp_path / "first"), "--width", "320", "--height", "240"])
    main([str(tmp_path / "second"), "--width", "320", "--height", "240"])
    first, second = digests(tmp_path / "first"), digests(tmp_path / "second")
    assert any(name.endswith(".webm") for name in first)
    assert any(name.endswith(".opus") for name in first)
    assert first == second
