"""The operator's policy: formats, limits, batching and derivative specs, read from a file.

The policy file is read when a run or a sensor tick executes, never when code loads, so an
operator changes it without a deploy. Each derivative spec hashes to a short id that names its
outputs in the store, so changing one spec makes only that derivative stale.

Every section is a frozen pydantic model that refuses unknown keys, wrong types (no string is
ever read as a number) and values the pipeline cannot honour; `load_policy` reports each
problem as `path.to.key: reason` under the file's name, so a typo fails loudly and truly.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
from collections.abc import Hashable
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

# Bump when the code that renders a derivative changes its output for the same spec.
RENDERER_VERSION = {"thumbnail": 1, "preview": 1, "web_rendition": 1, "audio_preview": 1,
                    "waveform": 1}
IMAGE_DERIVATIVES = ("thumbnail", "preview")

IMAGE_TYPES = ("jpeg", "png", "webp", "gif", "tiff", "bmp", "heic", "heif", "avif")
VIDEO_TYPES = ("mp4", "mov", "webm", "mkv", "avi")
AUDIO_TYPES = ("mp3", "m4a", "ogg", "flac", "wav", "aac")
SIDECAR_TYPES = ("xmp",)

FileType = Literal["jpeg", "png", "webp", "gif", "tiff", "bmp", "heic", "heif", "avif",
                   "mp4", "mov", "webm", "mkv", "avi", "mp3", "m4a", "ogg", "flac", "wav",
                   "aac", "xmp"]
ImageFormat = Literal["webp", "jpeg"]
X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                     "slower", "veryslow", "placebo"]
LongEdge = Annotated[int, Field(ge=16)]
Quality = Annotated[int, Field(ge=1, le=100)]


def _as_given(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate as a float but keep a YAML int an int: the spec hash (JSON) tells 30 from
    30.0, and stores already hold outputs named by both."""
    checked = handler(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else checked


SpecFloat = Annotated[float, WrapValidator(_as_given)]


class _Section(BaseModel):
    """A policy section: immutable, unknown keys refused, and strict types (a string is
    never read as a number, nor a float as a count; an int is a fine float)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        """A section or mapping left empty (YAML null, e.g. every line of it commented out)
        takes its default, as `{}` would; a null number, name or list is still refused."""
        if not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items()
                if value is not None or not _defaults_when_empty(cls.model_fields.get(key))}


def _defaults_when_empty(field: FieldInfo | None) -> bool:
    if field is None or field.is_required():
        return False
    kind = field.annotation
    return get_origin(kind) is dict or (isinstance(kind, type) and issubclass(kind, BaseModel))


class _At(ValueError):
    """A cross-field problem raised by a validator, with the key it is about (relative to
    the validated model), so the report names the key rather than its section."""

    def __init__(self, path: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.path = path


class _Spec(_Section):
    """A derivative spec: its fields and renderer version hash to the id that names its
    outputs in the store, so a changed spec never overwrites (or reuses) older outputs."""

    name: str

    @property
    def spec_hash(self) -> str:
        # dict(self) is the fields exactly as held (as dataclasses.asdict gave before).
        payload = {**dict(self), "renderer": RENDERER_VERSION.get(self.name, 1)}
        canonical = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:12]


class DerivativeSpec(_Spec):
    """How one image derivative is rendered: long edge bound, encoder and quality."""

    name: str
    long_edge: LongEdge
    format: ImageFormat
    quality: Quality = 80

    def __init__(self, *args: Any, **fields: Any) -> None:
        """Also positional, `DerivativeSpec("thumbnail", 250, "webp", 80)`."""
        names = ("name", "long_edge", "format", "quality")
        if len(args) > len(names):
            raise TypeError(f"DerivativeSpec takes at most {len(names)} positional arguments")
        super().__init__(**dict(zip(names, args, strict=False)), **fields)

    @property
    def extension(self) -> str:
        return {"jpeg": "jpg"}.get(self.format, self.format)


class RenditionSpec(_Spec):
    """A video's web rendition: H.264 + AAC in a fast-start MP4."""

    name: Literal["web_rendition"] = "web_rendition"
    # always | when_needed | never. `always` by default: a derivative is never the
    # original's bytes (under when_needed a fitting MP4 is linked, metadata and all).
    mode: Literal["always", "when_needed", "never"] = "always"
    long_edge: LongEdge = 720
    max_fps: SpecFloat = Field(default=30.0, gt=0)
    crf: int = Field(default=23, ge=0, le=51)
    preset: X264Preset = "veryfast"
    audio_bitrate: int = Field(default=128_000, gt=0)

    @property
    def extension(self) -> str:  # a property, as the `Spec` protocol of derivatives reads it
        return "mp4"


class AudioPreviewSpec(_Spec):
    """The first `seconds` of an audio file as AAC in M4A, 48 kHz stereo."""

    name: Literal["audio_preview"] = "audio_preview"
    seconds: SpecFloat = Field(default=30.0, gt=0)
    bit_rate: int = Field(default=128_000, gt=0)

    @property
    def extension(self) -> str:
        return "m4a"


class WaveformSpec(_Spec):
    """Peak envelope (min/max per bucket) as JSON, plus a PNG picture of it."""

    name: Literal["waveform"] = "waveform"
    buckets: int = Field(default=1000, gt=0)
    width: int = Field(default=1000, gt=0)
    height: int = Field(default=120, gt=0)

    @property
    def extension(self) -> str:
        return "json"


Spec = DerivativeSpec | RenditionSpec | AudioPreviewSpec | WaveformSpec


class RetentionClass(_Section):
    """When a class's originals go to the cold tier and when they are purged (None = never).
    Derivatives, metadata and catalog rows are kept either way."""

    cold_after_days: float | None = Field(default=None, ge=0)
    purge_after_days: float | None = Field(default=None, ge=0)


def _default_classes() -> dict[str, RetentionClass]:
    return {"standard": RetentionClass(cold_after_days=30),
            "ephemeral": RetentionClass(purge_after_days=7),
            "permanent": RetentionClass()}


class Retention(_Section):
    default_class: str = "standard"
    classes: dict[str, RetentionClass] = Field(default_factory=_default_classes)
    folders: dict[str, str] = Field(default_factory=dict)  # inbox sub-folder -> class
    quarantine_purge_after_days: float | None = Field(default=14, ge=0)
    # A batch partition is retired (removed from Dagster, kept in the store and the archive)
    # once this old, archived and verified; None = never. Keeps the UI's partitions bounded.
    retire_partitions_after_days: float | None = Field(default=90, ge=1)

    @field_validator("classes", mode="before")
    @classmethod
    def _empty_class_never_moves(cls, classes: Any) -> Any:
        """`permanent:` (YAML null) is `permanent: {}`."""
        return {name: {} if rules is None else rules for name, rules in classes.items()} \
            if isinstance(classes, dict) else classes

    @model_validator(mode="after")
    def _classes_are_defined(self) -> Retention:
        defined = f"defined: {sorted(self.classes)}"
        if self.default_class not in self.classes:
            raise _At(("default_class",), f"unknown class {self.default_class!r}; {defined}")
        for folder, name in self.folders.items():
            if name not in self.classes:
                raise _At(("folders", folder), f"unknown class {name!r}; {defined}")
        return self

    def class_of(self, source_name: str) -> str:
        """The class of the deepest configured inbox folder holding the file, else default."""
        matches = [folder for folder in self.folders
                   if source_name.startswith(folder.rstrip("/") + "/")]
        return self.folders[max(matches, key=len)] if matches else self.default_class


class VideoPolicy(_Section):
    rendition: RenditionSpec = RenditionSpec()
    # fraction of the duration where the poster frame is looked for
    poster_at: float = Field(default=0.1, ge=0, le=1)
    # per video and step (a transcode is minutes of CPU)
    timeout_seconds: float = Field(default=1800.0, gt=0)


class AudioPolicy(_Section):
    preview: AudioPreviewSpec = AudioPreviewSpec()
    waveform: WaveformSpec = WaveformSpec()
    timeout_seconds: float = Field(default=600.0, gt=0)


class Limits(_Section):
    max_file_bytes: int = Field(default=512 * 1024**2, gt=0)
    # Pillow refuses > 2 x MAX_IMAGE_PIXELS (~179 MP) anyway
    max_pixels: int = Field(default=178_000_000, gt=0)
    allowed_types: tuple[FileType, ...] = Field(
        default=IMAGE_TYPES + VIDEO_TYPES + AUDIO_TYPES + SIDECAR_TYPES, min_length=1, strict=False)
    max_sidecar_bytes: int = Field(default=1024 * 1024, gt=0)
    # Disk guard: a batch is accepted only while the store keeps this much free space after
    # the batch's expected output (its bytes x output_factor: staging, original, derivatives).
    min_free_bytes: int = Field(default=1024**3, ge=0)
    output_factor: float = Field(default=3.0, gt=0)
    max_duration_seconds: float = Field(default=4 * 3600.0, gt=0)  # video and audio
    # Declared frames (image frames and pages, video/audio sample-table entries) and
    # metadata blocks (EXIF, ICC, XMP, text chunks) are checked before any full decode.
    max_frames: int = Field(default=1_000_000, gt=0)
    max_metadata_bytes: int = Field(default=4 * 1024**2, gt=0)
    per_file_timeout_seconds: float = Field(default=120.0, gt=0)
    worker_memory_mb: int = Field(default=3072, gt=0)
    # Each file's worker also gets a CPU-time limit (RLIMIT_CPU, all its threads): this many
    # times the file's time limit. The kernel ends a worker past it, whatever it is doing.
    cpu_time_factor: float = Field(default=4.0, gt=0)
    workers: int = Field(default=0, ge=0)  # 0 = one per core
    # Housekeeping removes a temp file (a killed writer's) once untouched this long; it must
    # outlast every per-file time limit, so a live writer never loses its file.
    temp_max_age_seconds: float = Field(default=3600.0, gt=0)


class Batching(_Section):
    # A local file is taken once unmodified this long; an object-store object at once (it is
    # visible only when its upload completed: core/store.InboxEntry.complete).
    # A file written to after it was listed is left for the next batch, neither stored nor
    # quarantined (operations/batch_pass: still_being_written), so a short settle is safe.
    settle_seconds: float = Field(default=1.0, ge=0)
    # An idle sensor tick keeps watching the inbox this long, listing it every
    # watch_poll_seconds, and plans as soon as a file arrives (the daemon ticks a sensor at
    # most every 5 s: keep it below that). 0 = tick only. On S3 each poll is a LIST request.
    watch_seconds: float = Field(default=4.0, ge=0, lt=60)
    watch_poll_seconds: float = Field(default=0.2, gt=0)
    # A batch closes when it holds max_files files or max_bytes bytes, when its estimated
    # work reaches target_batch_seconds (operations/batching.py's cost model), or when its
    # oldest file has waited max_wait_seconds. Small files travel by the thousand: a run's
    # fixed cost (launch, imports, pool start, checks, catalog write: 4-6 s measured under
    # `dagster dev`) is then at most 5 % of a full batch's 120 s.
    max_files: int = Field(default=2000, gt=0)
    max_bytes: int = Field(default=4 * 1024**3, gt=0)
    target_batch_seconds: float = Field(default=120.0, gt=0)
    max_wait_seconds: float = Field(default=1.0, ge=0)  # from the mtime, like settle_seconds
    # A batch that is not full closes on its wait only while its lane has fewer open batches
    # (queued or running) than this; match the lane's run limit in dagster.yaml.
    open_batches_per_lane: int = Field(default=2, gt=0)
    header_bytes: int = Field(default=65536, gt=0)
    tick_file_budget: int = Field(default=5000, gt=0)
    tick_seconds_budget: float = Field(default=20.0, gt=0)
    daily_partition_budget: int = Field(default=48, ge=0)  # 0 (and no burst): every batch waits
    budget_burst: int = Field(default=12, ge=0)
    over_budget_max_wait_seconds: float = Field(default=600.0, ge=0)
    # The heavy lane (own batches, runs and queue limit), decided from the header and the
    # cheap probe: any one of these sends a file there.
    heavy_min_bytes: int = Field(default=200 * 1024**2, gt=0)
    heavy_min_pixels: int = Field(default=100_000_000, gt=0)         # images: width x height
    heavy_min_video_pixels: int = Field(default=3840 * 2160, gt=0)   # video frames: 4K UHD and up
    heavy_min_duration_seconds: float = Field(default=1800.0, gt=0)  # video (audio ~100x faster)
    # Codecs costly to decode whatever their size, by FFmpeg name, matched lowercase.
    heavy_codecs: tuple[str, ...] = Field(default=("prores",), strict=False)
    # Video and audio batches are sized by work (compressed bytes ~ decode/encode time),
    # not by count: a batch of videos is minutes of CPU, never hundreds of files.
    av_max_files: int = Field(default=16, gt=0)
    av_max_bytes: int = Field(default=512 * 1024**2, gt=0)
    # Bulk work (replays of quarantined files, rebuilds) goes in small runs: a running run is
    # never pre-empted, so a new upload waits at most for one small bulk run.
    bulk_max_files: int = Field(default=32, gt=0)

    @field_validator("heavy_codecs")
    @classmethod
    def _lowercase(cls, codecs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(codec.lower() for codec in codecs)


class BreakerRules(_Section):
    """When a lane's circuit breaker opens (operations/breaker.py applies them)."""

    window: int = Field(default=20, gt=0)  # the last files of a lane that are judged
    # open at this share of non-deterministic failures...
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    consecutive: int = Field(default=5, gt=0)  # ...or this many in a row
    min_files: int = Field(default=6, gt=0)  # (the ratio needs at least this many files)
    cooldown_seconds: float = Field(default=300.0, ge=0)


class HealingRules(_Section):
    """How a batch whose run failed or died runs again by itself (operations/healing.py)."""

    max_attempts: int = Field(default=5, ge=0)  # re-runs before a person is asked (0: never)
    backoff_seconds: float = Field(default=30.0, gt=0)  # before re-run 1, doubling each time
    max_backoff_seconds: float = Field(default=900.0, gt=0)


class Prices(_Section):
    """What resources cost (e.g. a cloud's list prices), to price the daily usage."""

    cpu_hour: float = Field(default=0.05, ge=0)
    gb_month: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"hot": 0.023, "cold": 0.004})
    per_1000_requests: float = Field(default=0.005, ge=0)
    currency: str = Field(default="USD", min_length=1)


class Costs(_Section):
    """Prices and daily budgets (None = no budget). A folder is the inbox's top-level
    sub-folder ("" = files dropped at the inbox root)."""

    prices: Prices = Prices()
    daily_budget: float | None = Field(default=None, ge=0)
    folder_budgets: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    warn_at: float = Field(default=0.8, gt=0, lt=1)  # alert at this fraction of a budget, and 100 %
    pause_over_budget: bool = False    # over 100 %: take no new files from the folder today


class Canary(_Section):
    """A new spec for one image derivative, applied first to `fraction` of the contents
    (chosen by content hash, so the same files every time)."""

    spec: DerivativeSpec
    fraction: float = Field(gt=0, le=1)


def canary_bucket(content_id: str) -> float:
    """Where a content falls in [0, 1): the first 32 bits of its SHA-256, so uniform."""
    return int(content_id[:8], 16) / 2**32


DEFAULT_DERIVATIVES = (DerivativeSpec("thumbnail", 250, "webp", 80),
                       DerivativeSpec("preview", 1440, "jpeg", 80))


class Governance(_Section):
    """Who may change the policy from the dashboard (names are declared, not proven:
    open-source Dagster has no user identity)."""

    require_second_approver: bool = False  # the approver must not be the proposer


class _Sections(_Section):
    """The sections the policy file and the Policy share."""

    version: str = "1"
    limits: Limits = Limits()
    batching: Batching = Batching()
    video: VideoPolicy = VideoPolicy()
    audio: AudioPolicy = AudioPolicy()
    retention: Retention = Retention()
    breaker: BreakerRules = BreakerRules()
    healing: HealingRules = HealingRules()
    costs: Costs = Costs()
    governance: Governance = Governance()
    freshness_minutes: float = Field(default=10.0, gt=0)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        """`version: 1` and `version: "1"` are the same version."""
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) \
            else value

    @model_validator(mode="after")
    def _temp_files_outlast_time_limits(self) -> _Sections:
        """A temp file idle for less than the longest time limit may be a live writer's."""
        longest = max(self.limits.per_file_timeout_seconds, self.video.timeout_seconds,
                      self.audio.timeout_seconds)
        if self.limits.temp_max_age_seconds <= longest:
            raise _At(("limits", "temp_max_age_seconds"),
                      f"{self.limits.temp_max_age_seconds:g} must exceed the longest per-file "
                      f"time limit ({longest:g} s): a temp file that young may still be written")
        return self


class Policy(_Sections):
    """Everything an operator may change without touching code."""

    derivatives: tuple[DerivativeSpec, ...] = DEFAULT_DERIVATIVES
    canaries: dict[str, Canary] = Field(default_factory=dict)
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

    def wanted_for(self, media_kind: str, content_id: str) -> tuple[Spec, ...]:
        """`wanted`, with each derivative under its canary spec where one applies."""
        return tuple(self.derivative_for(s.name, content_id) if s.name in self.canaries else s
                     for s in self.wanted(media_kind))

    def spec_stamp(self, name: str) -> str:
        """The spec hash, plus the canary's hash and fraction while one runs."""
        stamp = self.spec(name).spec_hash
        canary = self.canaries.get(name)
        return f"{stamp}+{canary.spec.spec_hash}@{canary.fraction:g}" if canary else stamp

    def spec(self, name: str) -> Spec:
        """Any derivative spec by name (image, video or audio)."""
        others: dict[str, Spec] = {s.name: s for s in (self.video.rendition,
                                                       self.audio.preview, self.audio.waveform)}
        return others[name] if name in others else self.derivative(name)

    def wanted(self, media_kind: str) -> tuple[Spec, ...]:
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


# --- The file as an operator writes it: derivatives and canaries keyed by name ---------------

class ImageSpec(_Section):
    """One image derivative in the file (its name is its key)."""

    long_edge: LongEdge
    format: ImageFormat
    quality: Quality = 80


class ImageDerivatives(_Section):
    """`derivatives:`: exactly one spec per image derivative asset."""

    thumbnail: ImageSpec
    preview: ImageSpec

    @model_validator(mode="after")
    def _thumbnail_within_preview(self) -> ImageDerivatives:
        """A thumbnail larger than the preview is a swapped pair, not a choice."""
        if self.thumbnail.long_edge > self.preview.long_edge:
            raise _At(("thumbnail", "long_edge"),
                      f"{self.thumbnail.long_edge} is larger than the preview's "
                      f"({self.preview.long_edge}): the thumbnail must not exceed the preview")
        return self

    def specs(self) -> tuple[DerivativeSpec, ...]:
        return tuple(DerivativeSpec(name=name, **dict(getattr(self, name)))
                     for name in IMAGE_DERIVATIVES)


class CanaryChange(_Section):
    """`canary: {thumbnail: {fraction: 0.1, quality: 70}}`: the fields that differ from the
    stable spec (null = unchanged), and the fraction of contents that get them first."""

    fraction: float = Field(default=0.1, gt=0, le=1)
    long_edge: LongEdge | None = None
    format: ImageFormat | None = None
    quality: Quality | None = None

    def applied_to(self, stable: DerivativeSpec) -> Canary:
        changes = self.model_dump(exclude={"fraction"}, exclude_none=True)
        return Canary(spec=DerivativeSpec(**{**dict(stable), **changes}),
                      fraction=self.fraction)


class Canaries(_Section):
    thumbnail: CanaryChange | None = None
    preview: CanaryChange | None = None

    def rollouts(self, stable: tuple[DerivativeSpec, ...]) -> dict[str, Canary]:
        """The canaries that change something (one equal to its stable spec is none)."""
        specs = {spec.name: spec for spec in stable}
        found = {name: change.applied_to(specs[name]) for name in IMAGE_DERIVATIVES
                 if (change := getattr(self, name)) is not None}
        return {name: canary for name, canary in found.items() if canary.spec != specs[name]}


class PolicyFile(_Sections):
    """policy.yaml as written (see the shipped file for every key and its meaning)."""

    derivatives: ImageDerivatives | None = None  # None: the built-in specs
    canary: Canaries = Canaries()


# --- Loading and reporting ----------------------------------------------------------------

class PolicyError(ValueError):
    """The policy cannot be used: names the file and each problem as `path.to.key: reason`."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"invalid policy in {source} ({count}):\n" +
                         "\n".join(f"  {problem}" for problem in problems))


# Pydantic's words for YAML's shapes, where they differ.
_SHAPES = {"tuple_type": "Input should be a list",
           "list_type": "Input should be a list",
           "dict_type": "Input should be a mapping (key: value)",
           "model_type": "Input should be a mapping (key: value)",
           "model_attributes_type": "Input should be a mapping (key: value)"}


def _problems(error: ValidationError, schema: type[BaseModel]) -> list[str]:
    """Each of pydantic's errors as `path.to.key: reason` an operator can act on."""
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        reason = _SHAPES.get(item["type"], item["msg"].removeprefix("Value error, ")
                             .replace("Tuple should", "List should"))  # a YAML list
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, _At):
            loc += cause.path
        if item["type"] == "extra_forbidden":
            reason = _unknown_key(schema, loc)
        elif item["type"] == "missing":
            reason = "missing (required)"
        elif item["type"] not in ("value_error", "assertion_error"):
            shown = repr(item["input"])
            reason += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}"
                       for part in loc).lstrip(".") or "(top level)"
        problems.append(f"{path}: {reason}")
    return problems


def _unknown_key(schema: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """'unknown key', with the nearest known key or the known keys."""
    model = _model_at(schema, loc[:-1])
    if model is None:
        return "unknown key"
    known = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return f"unknown key (did you mean {close[0]!r}?)" if close else \
        f"unknown key (known: {', '.join(known)})"


def _model_at(schema: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model found at `path` (through optional values and mappings)."""
    node: Any = schema
    for part in path:
        node = _unwrap_optional(node)
        if isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            node = node.model_fields[part].annotation
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            return None
    node = _unwrap_optional(node)
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None


def _unwrap_optional(node: Any) -> Any:
    if get_origin(node) in (Union, UnionType):
        members = [arg for arg in get_args(node) if arg is not type(None)]
        return members[0] if len(members) == 1 else node
    return node


def policy_from_mapping(raw: dict[str, Any] | None, source_digest: str = "inline", *,
                        source: str = "the given mapping") -> Policy:
    """Build a Policy from a parsed YAML mapping; a PolicyError names every problem."""
    try:
        parsed = PolicyFile.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        raise PolicyError(source, _problems(exc, PolicyFile)) from None
    stable = parsed.derivatives.specs() if parsed.derivatives else DEFAULT_DERIVATIVES
    sections = {name: getattr(parsed, name) for name in _Sections.model_fields}
    return Policy(**sections, derivatives=stable, canaries=parsed.canary.rollouts(stable),
                  source_digest=source_digest)


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping (plain YAML keeps the last
    silently, so half of a duplicated section would be ignored)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults` merges are flattened by PyYAML below
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # refused by PyYAML below
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_policy(path: str | Path | None) -> Policy:
    """Read the policy file; a missing path means the built-in defaults. Raises PolicyError
    naming the file (and line, for a YAML syntax error) and every problem."""
    if not path:
        return Policy()
    return parse_policy(read_policy_bytes(path), str(path))


def read_policy_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from None


def parse_policy(data: bytes, source: str) -> Policy:
    """The policy in `data` (a policy file's bytes); `source` names it in errors.

    Policies are frozen, so the same bytes give the same object: a sensor ticking every few
    seconds parses its file once per change, not once per tick (an error is never cached)."""
    return _parse_policy(data, source)


@functools.lru_cache(maxsize=16)
def _parse_policy(data: bytes, source: str) -> Policy:
    try:
        raw = yaml.load(data, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        raise PolicyError(source, [_yaml_problem(exc)]) from None
    return policy_from_mapping(raw, source_digest=policy_digest(data), source=source)


def policy_digest(data: bytes) -> str:
    """A policy version's name: the start of its file's SHA-256."""
    return hashlib.sha256(data).hexdigest()[:12]


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = "; ".join(filter(None, (exc.context, exc.problem)))
        return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {what}"
    return f"invalid YAML: {exc}"
