"""The operator's policy: formats, limits, batching and derivative specs, read from a file.

The policy file is read when a run or a sensor tick executes, never when code loads, so an
operator changes it without a deploy. Each derivative spec hashes to a short id that names its
outputs in the store, so changing one spec makes only that derivative stale.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Bump when the code that renders a derivative changes its output for the same spec.
RENDERER_VERSION = {"thumbnail": 1, "preview": 1}

IMAGE_TYPES = ("jpeg", "png", "webp", "gif", "tiff", "bmp", "heic", "heif", "avif")


@dataclass(frozen=True)
class DerivativeSpec:
    """How one derivative is rendered: long edge bound, encoder and quality."""

    name: str
    long_edge: int
    format: str  # "webp" or "jpeg"
    quality: int = 80

    @property
    def spec_hash(self) -> str:
        """Short stable id of everything that shapes this derivative's bytes."""
        payload = {**asdict(self), "renderer": RENDERER_VERSION.get(self.name, 1)}
        canonical = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:12]

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg"}.get(self.format, self.format)


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 512 * 1024**2
    max_pixels: int = 178_000_000  # Pillow refuses > 2 x MAX_IMAGE_PIXELS (~179 MP) anyway
    allowed_types: tuple[str, ...] = IMAGE_TYPES
    per_file_timeout_seconds: float = 120.0
    worker_memory_mb: int = 3072
    workers: int = 0  # 0 = one per core


@dataclass(frozen=True)
class Batching:
    settle_seconds: float = 2.0
    max_files: int = 256
    max_bytes: int = 2 * 1024**3
    max_wait_seconds: float = 2.0
    header_bytes: int = 65536
    tick_file_budget: int = 5000
    tick_seconds_budget: float = 20.0
    daily_partition_budget: int = 48
    budget_burst: int = 12
    over_budget_max_wait_seconds: float = 600.0
    heavy_min_bytes: int = 200 * 1024**2
    heavy_min_pixels: int = 100_000_000


@dataclass(frozen=True)
class Policy:
    """Everything an operator may change without touching code."""

    version: str = "1"
    limits: Limits = field(default_factory=Limits)
    batching: Batching = field(default_factory=Batching)
    derivatives: tuple[DerivativeSpec, ...] = (
        DerivativeSpec("thumbnail", 250, "webp", 80),
        DerivativeSpec("preview", 1440, "jpeg", 80),
    )
    freshness_minutes: float = 10.0
    source_digest: str = "defaults"

    def derivative(self, name: str) -> DerivativeSpec:
        for spec in self.derivatives:
            if spec.name == name:
                return spec
        raise KeyError(f"no derivative named {name!r} in the policy")

    @property
    def stamp(self) -> str:
        """What a run records as 'the policy it read': version plus content digest."""
        return f"{self.version}@{self.source_digest}"


def policy_from_mapping(raw: dict[str, Any], source_digest: str = "inline") -> Policy:
    """Build a Policy from a parsed YAML mapping, rejecting unknown keys loudly."""
    raw = dict(raw or {})
    limits = dict(raw.pop("limits", {}) or {})
    if "allowed_types" in limits:
        limits["allowed_types"] = tuple(limits["allowed_types"])
    derivatives = raw.pop("derivatives", None)
    specs = Policy().derivatives
    if derivatives is not None:
        specs = tuple(DerivativeSpec(name=name, **spec) for name, spec in derivatives.items())
        _validate_specs(specs)
    return Policy(
        version=str(raw.pop("version", "1")),
        limits=Limits(**limits),
        batching=Batching(**(raw.pop("batching", {}) or {})),
        derivatives=specs,
        freshness_minutes=float(raw.pop("freshness_minutes", 10.0)),
        source_digest=source_digest,
        **_reject_unknown(raw),
    )


def _validate_specs(specs: tuple[DerivativeSpec, ...]) -> None:
    """Refuse a policy the pipeline cannot honour, with a message an operator can act on."""
    names = [spec.name for spec in specs]
    if sorted(names) != sorted(RENDERER_VERSION):
        raise ValueError(f"policy derivatives must be exactly {sorted(RENDERER_VERSION)} "
                         f"(one asset each); got {names}")
    for spec in specs:
        if spec.format not in ("webp", "jpeg"):
            raise ValueError(f"derivative {spec.name}: format must be webp or jpeg")
        if spec.long_edge < 16 or not 1 <= spec.quality <= 100:
            raise ValueError(f"derivative {spec.name}: long_edge >= 16, quality 1..100")


def _reject_unknown(rest: dict[str, Any]) -> dict[str, Any]:
    if rest:
        raise ValueError(f"unknown policy keys: {sorted(rest)}")
    return {}


def load_policy(path: str | Path | None) -> Policy:
    """Read the policy file; a missing path means the built-in defaults."""
    if not path:
        return Policy()
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    return policy_from_mapping(yaml.safe_load(data) or {}, source_digest=digest)
