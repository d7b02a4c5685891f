"""`python -m media_assets.samples DEST`: write sample images, videos and audio into DEST."""

from __future__ import annotations

import argparse
from pathlib import Path

from media_assets.samples.av import write_sample_av
from media_assets.samples.images import write_sample_images


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dest", type=Path, help="directory to write the samples into")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images-only", action="store_true", help="no video or audio")
    args = parser.parse_args(argv)
    written = write_sample_images(args.dest, size=(args.width, args.height), seed=args.seed)
    if not args.images_only:
        written += write_sample_av(args.dest / "av")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
