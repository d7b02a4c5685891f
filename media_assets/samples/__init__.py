"""Synthetic sample media for `make dev`, the tests and the benchmarks (no network)."""

from media_assets.samples.images import (
    synth_photo,
    write_jpeg_with_orientation,
    write_sample_images,
)

__all__ = ["synth_photo", "write_jpeg_with_orientation", "write_sample_images", "main"]


def main(argv: list[str] | None = None) -> None:
    from media_assets.samples.__main__ import main as run

    run(argv)
