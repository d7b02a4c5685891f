"""The derivative registry: one module per derivative (its asset, spec, renderer and output
check). Assets, checks, the rebuild mapping and the catalog's derivative list are built from
`REGISTRY`, so a new derivative is one module here plus its test.

Derivatives that share a `render` function are rendered together from one decode of the
original (thumbnail and preview); a derivative with `in_pass=False` has its own Dagster op
(the web rendition: a transcode pool slot and its own retries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from media_assets.core.policy import Policy


class Spec(Protocol):
    """What every derivative spec offers (image, rendition, audio preview, waveform)."""

    @property
    def name(self) -> str: ...
    @property
    def spec_hash(self) -> str: ...
    @property
    def extension(self) -> str: ...


@dataclass(frozen=True)
class RenderContext:
    """What a renderer may need beyond the specs: limits and policy-wide settings."""

    max_pixels: int
    draft_edge: int  # the largest image derivative's long edge: decodes reduce to it
    poster_at: float = 0.1
    full_check: bool = False  # decode each output completely (a sample of the batch)


@dataclass(frozen=True)
class Output:
    """One rendered derivative file (and its companions, e.g. the waveform's picture),
    checked from the bytes in hand: `problem` is None when it conforms to its spec."""

    derivative: str
    spec_hash: str
    path: str
    width: int | None
    height: int | None
    bytes: int
    render_ms: float
    problem: str | None = None
    companions: dict[str, str] = field(default_factory=dict)  # extension -> local path


Renderer = Callable[[Path, str, Sequence[Spec], Path, RenderContext], list[Output]]


@dataclass(frozen=True)
class Derivative:
    """A derivative: which asset holds it, for which media kinds, under which spec."""

    name: str  # its spec's name in the policy and in catalog rows
    asset: str  # the asset key that holds it
    media_kinds: tuple[str, ...]
    formats: frozenset[str]  # shown as the asset's kinds in the UI
    code_version: str
    description: str
    stage: str  # the step name in timings, usage and quarantine records
    specs_to_keep: Callable[[Policy, str], tuple[Spec, ...]]  # a content's outputs (canary+stable)
    current_spec: Callable[[Policy, str], Spec]  # the spec a content's output is current under
    render: Renderer | None  # None: rendered by its own op
    in_pass: bool = True


def _load() -> tuple[Derivative, ...]:
    from media_assets.codec.derivatives import (
        audio_preview,
        poster,
        preview,
        thumbnail,
        waveform,
        web_rendition,
    )

    return tuple(m.DERIVATIVE for m in (thumbnail, preview, poster, web_rendition,
                                        audio_preview, waveform))


REGISTRY: tuple[Derivative, ...] = _load()
BY_ASSET: dict[str, Derivative] = {d.asset: d for d in REGISTRY}


def for_kind(media_kind: str, assets: Sequence[str] | None = None) -> list[Derivative]:
    """The pass's derivatives of a media kind (only those of `assets`, when given)."""
    return [d for d in REGISTRY if d.in_pass and media_kind in d.media_kinds
            and (assets is None or d.asset in assets)]


def rebuilt_by() -> dict[tuple[str, str], str]:
    """(media kind, derivative name) -> the asset that renders it (for rebuild requests)."""
    return {(kind, d.name): d.asset for d in REGISTRY for kind in d.media_kinds}
