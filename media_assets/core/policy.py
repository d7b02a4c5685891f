"""The operator's policy: formats, limits, batching and derivative specs, read from a file.

The policy file is read when a run or a sensor tick executes, never when code loads, so an
operator changes it without a deploy. Each derivative spec hashes to a short id that names its
outputs in the store, so changing one spec makes only that derivative stale.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from media_assets.operations.breaker import BreakerRules

# Bump when the code that renders a derivative changes its output for the same spec.
RENDERER_VERSION = {"thumbnail": 1, "preview": 1, "web_rendition": 1, "audio_preview": 1,
                    "waveform": 1}
IMAGE_DERIVATIVES = ("thumbnail", "preview")

IMAGE_TYPES = ("jpeg", "png", "webp", "gif", "tiff", "bmp", "heic", "heif", "avif")
VIDEO_TYPES = ("mp4", "mov", "webm", "mkv", "avi")
AUDIO_TYPES = ("mp3", "m4a", "ogg", "flac", "wav", "aac")
SIDECAR_TYPES = ("xmp",)


class _Hashed:
    """A derivative spec: its fields and renderer version hash to the id that names its
    outputs in the store, so a changed spec never overwrites (or reuses) older outputs."""

    name: str

    @property
    def spec_hash(self) -> str:
        payload = {**asdict(self), "renderer": RENDERER_VERSION.get(self.name, 1)}  # type: ignore[call-overload]
        canonical = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:12]


@dataclass(frozen=True)
class DerivativeSpec(_Hashed):
    """How one image derivative is rendered: long edge bound, encoder and quality."""

    name: str
    long_edge: int
    format: str  # "webp" or "jpeg"
    quality: int = 80

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg"}.get(self.format, self.format)


@dataclass(frozen=True)
class RenditionSpec(_Hashed):
    """A video's web rendition: H.264 + AAC in a fast-start MP4."""

    name: str = "web_rendition"
    # always | when_needed | never. `always` by default: a derivative is never the
    # original's bytes (under when_needed a fitting MP4 is linked, metadata and all).
    mode: str = "always"
    long_edge: int = 720
    max_fps: float = 30.0
    crf: int = 23
    preset: str = "veryfast"
    audio_bitrate: int = 128_000
    extension = "mp4"


@dataclass(frozen=True)
class AudioPreviewSpec(_Hashed):
    """The first `seconds` of an audio file as AAC in M4A, 48 kHz stereo."""

    name: str = "audio_preview"
    seconds: float = 30.0
    bit_rate: int = 128_000
    extension = "m4a"


@dataclass(frozen=True)
class WaveformSpec(_Hashed):
    """Peak envelope (min/max per bucket) as JSON, plus a PNG picture of it."""

    name: str = "waveform"
    buckets: int = 1000
    width: int = 1000
    height: int = 120
    extension = "json"


@dataclass(frozen=True)
class RetentionClass:
    """When a class's originals go to the cold tier and when they are purged (None = never).
    Derivatives, metadata and catalog rows are kept either way."""

    cold_after_days: float | None = None
    purge_after_days: float | None = None


@dataclass(frozen=True)
class Retention:
    default_class: str = "standard"
    classes: dict[str, RetentionClass] = field(default_factory=lambda: {
        "standard": RetentionClass(cold_after_days=30),
        "ephemeral": RetentionClass(purge_after_days=7),
        "permanent": RetentionClass(),
    })
    folders: dict[str, str] = field(default_factory=dict)  # inbox sub-folder -> class
    quarantine_purge_after_days: float | None = 14

    def class_of(self, source_name: str) -> str:
        """The class of the deepest configured inbox folder holding the file, else default."""
        matches = [folder for folder in self.folders
                   if source_name.startswith(folder.rstrip("/") + "/")]
        return self.folders[max(matches, key=len)] if matches else self.default_class


def _retention(raw: dict[str, Any]) -> Retention:
    raw = dict(raw)
    classes = raw.pop("classes", None)
    retention = Retention(**raw) if classes is None else Retention(
        classes={name: RetentionClass(**(spec or {})) for name, spec in classes.items()}, **raw)
    unknown = {retention.default_class, *retention.folders.values()} - set(retention.classes)
    if unknown:
        raise ValueError(f"retention: unknown classes {sorted(unknown)}; "
                         f"defined: {sorted(retention.classes)}")
    return retention


@dataclass(frozen=True)
class VideoPolicy:
    rendition: RenditionSpec = field(default_factory=RenditionSpec)
    poster_at: float = 0.1  # fraction of the duration where the poster frame is looked for
    timeout_seconds: float = 1800.0  # per video and step (a transcode is minutes of CPU)


@dataclass(frozen=True)
class AudioPolicy:
    preview: AudioPreviewSpec = field(default_factory=AudioPreviewSpec)
    waveform: WaveformSpec = field(default_factory=WaveformSpec)
    timeout_seconds: float = 600.0


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 512 * 1024**2
    max_pixels: int = 178_000_000  # Pillow refuses > 2 x MAX_IMAGE_PIXELS (~179 MP) anyway
    allowed_types: tuple[str, ...] = IMAGE_TYPES + VIDEO_TYPES + AUDIO_TYPES + SIDECAR_TYPES
    max_sidecar_bytes: int = 1024 * 1024
    # Disk guard: a batch is accepted only while the store keeps this much free space after
    # the batch's expected output (its bytes x output_factor: staging, original, derivatives).
    min_free_bytes: int = 1024**3
    output_factor: float = 3.0
    max_duration_seconds: float = 4 * 3600.0  # video and audio
    # Declared frames (image frames and pages, video/audio sample-table entries) and
    # metadata blocks (EXIF, ICC, XMP, text chunks) are checked before any full decode.
    max_frames: int = 1_000_000
    max_metadata_bytes: int = 4 * 1024**2
    per_file_timeout_seconds: float = 120.0
    worker_memory_mb: int = 3072
    # Each file's worker also gets a CPU-time limit (RLIMIT_CPU, all its threads): this many
    # times the file's time limit. The kernel ends a worker past it, whatever it is doing.
    cpu_time_factor: float = 4.0
    workers: int = 0  # 0 = one per core
    # Housekeeping removes a temp file (a killed writer's) once untouched this long; it must
    # outlast every per-file time limit, so a live writer never loses its file.
    temp_max_age_seconds: float = 3600.0


@dataclass(frozen=True)
class Batching:
    settle_seconds: float = 2.0
    # A batch closes when it holds max_files files or max_bytes bytes, when its estimated
    # work reaches target_batch_seconds (operations/batching.py's cost model), or when its
    # oldest file has waited max_wait_seconds. Small files travel by the thousand: a run's
    # fixed cost (~3 s) is then a few per cent of its time.
    max_files: int = 2000
    max_bytes: int = 4 * 1024**3
    target_batch_seconds: float = 60.0
    max_wait_seconds: float = 2.0
    header_bytes: int = 65536
    tick_file_budget: int = 5000
    tick_seconds_budget: float = 20.0
    daily_partition_budget: int = 48
    budget_burst: int = 12
    over_budget_max_wait_seconds: float = 600.0
    # The heavy lane (own batches, runs and queue limit), decided from the header and the
    # cheap probe: any one of these sends a file there.
    heavy_min_bytes: int = 200 * 1024**2
    heavy_min_pixels: int = 100_000_000           # images: declared width x height
    heavy_min_video_pixels: int = 3840 * 2160     # video frames: 4K UHD and up
    heavy_min_duration_seconds: float = 1800.0    # video (audio decodes ~100x faster)
    heavy_codecs: tuple[str, ...] = ("prores",)   # costly to decode whatever their size
    # Video and audio batches are sized by work (compressed bytes ~ decode/encode time),
    # not by count: a batch of videos is minutes of CPU, never hundreds of files.
    av_max_files: int = 16
    av_max_bytes: int = 512 * 1024**2
    # Bulk work (replays of quarantined files, rebuilds) goes in small runs: a running run is
    # never pre-empted, so a new upload waits at most for one small bulk run.
    bulk_max_files: int = 32


@dataclass(frozen=True)
class Prices:
    """What resources cost (e.g. a cloud's list prices), to price the daily usage."""

    cpu_hour: float = 0.05
    gb_month: dict[str, float] = field(default_factory=lambda: {"hot": 0.023, "cold": 0.004})
    per_1000_requests: float = 0.005
    currency: str = "USD"


@dataclass(frozen=True)
class Costs:
    """Prices and daily budgets (None = no budget). A folder is the inbox's top-level
    sub-folder ("" = files dropped at the inbox root)."""

    prices: Prices = field(default_factory=Prices)
    daily_budget: float | None = None
    folder_budgets: dict[str, float] = field(default_factory=dict)
    warn_at: float = 0.8               # alert at this fraction of a budget, and at 100 %
    pause_over_budget: bool = False    # over 100 %: take no new files from the folder today


def _costs(raw: dict[str, Any]) -> Costs:
    raw = dict(raw)
    costs = Costs(prices=Prices(**(raw.pop("prices", {}) or {})),
                  folder_budgets=dict(raw.pop("folder_budgets", {}) or {}), **raw)
    if not 0 < costs.warn_at < 1:
        raise ValueError("costs.warn_at must be between 0 and 1 (e.g. 0.8)")
    return costs


@dataclass(frozen=True)
class Canary:
    """A new spec for one image derivative, applied first to `fraction` of the contents
    (chosen by content hash, so the same files every time)."""

    spec: DerivativeSpec
    fraction: float


def canary_bucket(content_id: str) -> float:
    """Where a content falls in [0, 1): the first 32 bits of its SHA-256, so uniform."""
    return int(content_id[:8], 16) / 2**32


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
    video: VideoPolicy = field(default_factory=VideoPolicy)
    audio: AudioPolicy = field(default_factory=AudioPolicy)
    retention: Retention = field(default_factory=Retention)
    breaker: BreakerRules = field(default_factory=BreakerRules)
    costs: Costs = field(default_factory=Costs)
    canaries: dict[str, Canary] = field(default_factory=dict)
    freshness_minutes: float = 10.0
    source_digest: str = "defaults"

    def derivative(self, name: str) -> DerivativeSpec:
        for spec in self.derivatives:
            if spec.name == name:
                return spec
        raise KeyError(f"no derivative named {name!r} in the policy")

    def in_canary(self, name: str, content_id: str) -> bool:
        canary = self.canaries.get(name)
        return canary is not None and canary_bucket(content_id) < canary.fraction

    def derivative_for(self, name: str, content_id: str) -> DerivativeSpec:
        """The spec a content's derivative is current under: the canary's for the contents
        in its fraction, the stable one otherwise."""
        return self.canaries[name].spec if self.in_canary(name, content_id) else \
            self.derivative(name)

    def specs_to_keep(self, name: str, content_id: str) -> tuple[DerivativeSpec, ...]:
        """Outputs a content must have: its current spec's, plus the stable spec's while it
        is in a canary (so a rollback needs no render)."""
        current = self.derivative_for(name, content_id)
        stable = self.derivative(name)
        return (current,) if current == stable else (current, stable)

    def wanted_for(self, media_kind: str, content_id: str) -> tuple[Any, ...]:
        """`wanted`, with each derivative under its canary spec where one applies."""
        return tuple(self.derivative_for(s.name, content_id) if s.name in self.canaries else s
                     for s in self.wanted(media_kind))

    def spec_stamp(self, name: str) -> str:
        """The spec hash, plus the canary's hash and fraction while one runs."""
        stamp = self.spec(name).spec_hash
        canary = self.canaries.get(name)
        return f"{stamp}+{canary.spec.spec_hash}@{canary.fraction:g}" if canary else stamp

    def spec(self, name: str) -> Any:
        """Any derivative spec by name (image, video or audio)."""
        others = {s.name: s for s in (self.video.rendition, self.audio.preview,
                                      self.audio.waveform)}
        return others[name] if name in others else self.derivative(name)

    def wanted(self, media_kind: str) -> tuple[Any, ...]:
        """The derivative specs every file of a kind should have."""
        if media_kind == "image":
            return self.derivatives
        if media_kind == "video":
            rendition = self.video.rendition
            return (self.derivative("thumbnail"),) + ((rendition,)
                                                      if rendition.mode != "never" else ())
        if media_kind == "audio":
            return (self.audio.preview, self.audio.waveform)
        return ()

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
    video = dict(raw.pop("video", {}) or {})
    audio = dict(raw.pop("audio", {}) or {})
    canaries = _canaries(raw.pop("canary", {}) or {}, specs)
    policy = Policy(
        version=str(raw.pop("version", "1")),
        limits=Limits(**limits),
        batching=_batching(raw.pop("batching", {}) or {}),
        derivatives=specs,
        video=VideoPolicy(rendition=_rendition(video.pop("rendition", {}) or {}), **video),
        audio=AudioPolicy(preview=AudioPreviewSpec(**(audio.pop("preview", {}) or {})),
                          waveform=WaveformSpec(**(audio.pop("waveform", {}) or {})), **audio),
        retention=_retention(raw.pop("retention", {}) or {}),
        breaker=BreakerRules(**(raw.pop("breaker", {}) or {})),
        costs=_costs(raw.pop("costs", {}) or {}),
        canaries=canaries,
        freshness_minutes=float(raw.pop("freshness_minutes", 10.0)),
        source_digest=source_digest,
        **_reject_unknown(raw),
    )
    _validate_temp_age(policy)
    return policy


def _batching(raw: dict[str, Any]) -> Batching:
    raw = dict(raw)
    if "heavy_codecs" in raw:  # a YAML list of names, matched lowercase
        raw["heavy_codecs"] = tuple(str(c).lower() for c in raw["heavy_codecs"] or ())
    return Batching(**raw)


def _validate_temp_age(policy: Policy) -> None:
    """A temp file idle for less than the longest time limit may still be a live writer's."""
    longest = max(policy.limits.per_file_timeout_seconds, policy.video.timeout_seconds,
                  policy.audio.timeout_seconds)
    if policy.limits.temp_max_age_seconds <= longest:
        raise ValueError(f"limits.temp_max_age_seconds ({policy.limits.temp_max_age_seconds:g})"
                         f" must exceed the longest per-file time limit ({longest:g} s): a "
                         "temp file that young may still be written")


def _canaries(raw: dict[str, Any], specs: tuple[DerivativeSpec, ...]) -> dict[str, Canary]:
    """`canary: {thumbnail: {fraction: 0.1, quality: 70}}`: the fields that differ from the
    stable spec, and the fraction of contents that get them first."""
    stable = {spec.name: spec for spec in specs}
    canaries = {}
    for name, changes in raw.items():
        changes = dict(changes or {})
        if name not in stable:
            raise ValueError(f"canary: {name!r} is not one of the derivatives "
                             f"{sorted(stable)}")
        fraction = float(changes.pop("fraction", 0.1))
        if not 0 < fraction <= 1:
            raise ValueError(f"canary.{name}.fraction must be in (0, 1]")
        spec = replace(stable[name], **changes)
        _validate_specs(tuple(s if s.name != name else spec for s in specs))
        if spec != stable[name]:
            canaries[name] = Canary(spec, fraction)
    return canaries


def _rendition(raw: dict[str, Any]) -> RenditionSpec:
    spec = RenditionSpec(**raw)
    if spec.mode not in ("always", "when_needed", "never"):
        raise ValueError("video.rendition.mode must be always, when_needed or never")
    if spec.long_edge < 16 or not 0 <= spec.crf <= 51 or spec.max_fps <= 0:
        raise ValueError("video.rendition: long_edge >= 16, crf 0..51, max_fps > 0")
    return spec


def _validate_specs(specs: tuple[DerivativeSpec, ...]) -> None:
    """Refuse a policy the pipeline cannot honour, with a message an operator can act on."""
    names = [spec.name for spec in specs]
    if sorted(names) != sorted(IMAGE_DERIVATIVES):
        raise ValueError(f"policy derivatives must be exactly {sorted(IMAGE_DERIVATIVES)} "
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
