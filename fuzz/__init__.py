"""Atheris fuzzers over the intake's probe/validate functions and the derivative renderers.

    python -m fuzz --target structure --seconds 60      # bounded run (CI runs ~20 s)
    python -m fuzz --target pipeline --seconds 3600     # longer, by hand

Seeds: the generated good and hostile sets (`media_assets_tests/hostile.py`) plus the
regression files. A crash, an unexpected exception or a hang is written to
`fuzz/findings/`; copy it to `media_assets_tests/regressions/<target>/` once fixed, and the
normal test suite replays it for ever.
"""
