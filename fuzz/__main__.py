"""Run a fuzzer for a bounded time: `python -m fuzz --target NAME --seconds N`."""

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REGRESSIONS = HERE.parent / "media_assets_tests" / "regressions"


def seed_corpus(target: str, dest: Path) -> Path:
    """The good and hostile sets (hostile ones cut to fuzzer-sized inputs) and the
    regression files of this target."""
    from media_assets_tests.hostile import write_good_set, write_hostile_set

    good = write_good_set(dest / "good")
    write_hostile_set(dest / "hostile", good)
    corpus = dest / "corpus"
    corpus.mkdir()
    for path in [*good.values(), *(dest / "hostile").iterdir(),
                 *sorted((REGRESSIONS / target).glob("*"))]:
        if path.is_file():
            (corpus / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes()[:262_144])
    return corpus


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="structure", choices=["structure", "pipeline"])
    parser.add_argument("--seconds", type=int, default=60, help="total fuzzing time")
    parser.add_argument("--findings", type=Path, default=HERE / "findings")
    parser.add_argument("--corpus", type=Path, help="a corpus folder to keep (and grow)")
    parser.add_argument("--timeout", type=int, default=20, help="seconds per input: a hang")
    parser.add_argument("--rss-mb", type=int, default=3072, help="memory per run: a bomb")
    args, extra = parser.parse_known_args(argv)

    import warnings

    import atheris

    warnings.simplefilter("ignore")  # Pillow's warnings on broken metadata: noise here

    with atheris.instrument_imports(include=["media_assets"]):
        from fuzz.harness import TARGETS

    one_input = TARGETS[args.target]
    args.findings.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="fuzz-"))
    seeds = seed_corpus(args.target, scratch)
    corpus = args.corpus or scratch / "grown"
    corpus.mkdir(parents=True, exist_ok=True)
    fuzzer_args = [sys.argv[0], str(corpus), str(seeds),
                   f"-max_total_time={args.seconds}", f"-timeout={args.timeout}",
                   f"-rss_limit_mb={args.rss_mb}", "-max_len=262144",
                   f"-artifact_prefix={args.findings}/{args.target}-", "-print_final_stats=1",
                   *extra]
    atheris.Setup(fuzzer_args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
