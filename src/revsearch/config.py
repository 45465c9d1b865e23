"""All configuration in one place: defaults, `REVSEARCH_*` environment variables, overrides.

Precedence, lowest to highest: the defaults below, environment variables, keyword
arguments (which is what CLI flags become).

Each setting is declared once, as a field of `Settings` whose metadata (`Info`, made by
`about`) carries its help text, its choices, its group and the subcommands that use it;
the CLI builds its flags from that, so a new setting needs no other edit to become a flag.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from revsearch.errors import SettingsError

ENV_PREFIX = "REVSEARCH_"

# Subcommands, by what they do with the settings.
INDEXING = ("index", "serve")  # add files to an index
QUERYING = ("search", "faces", "verify", "serve")  # analyse a query photo or video
MEASURING = ("calibrate", "eval")  # run a pipeline over a benchmark
# open a database
OPENING = ("index", "search", "faces", "verify", "remove", "serve", "stats", "people")
DECIDING = ("search", "verify", "serve", "stats")  # judge a match
MODEL = (*OPENING, *MEASURING)  # pick the embedding space or its models
ANALYSING = (*INDEXING, *QUERYING, *MEASURING)  # run detection and embedding

# Group name -> its heading in `--help`, in the order the groups are shown.
GROUPS = {
    "database": "database",
    "models": "models (the embedding space)",
    "detection": "face detection",
    "video": "video sampling and face tracks",
    "ingest": "ingest",
    "search": "search",
    "people": "people (grouping faces into persons)",
    "limits": "input limits",
    "server": "server",
}

Choices = tuple[str, ...] | Callable[[], Sequence[str]]

# The older way to name a face space (`--space` is the newer): a built-in one by name, or
# "onnx" for a model file given with --model-path. Fixed: new spaces get only the new way.
LEGACY_EMBEDDERS = ("sface", "dlib", "sface_dlib", "onnx")

# Where an ingest analyses files (revsearch.ingest.engines).
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Info:
    """What a setting is for: shown by `--help`, used to build and check its flag."""

    help: str
    group: str
    commands: tuple[str, ...]
    # A tuple, or a function returning them from the registry that owns them; it is
    # called only to show help or check a value, so importing config stays cheap.
    choices: Choices | None = None
    shown_default: str | None = None  # for defaults computed at run time


def about(group: str, commands: Sequence[str], help: str, *,
          choices: Choices | None = None, shown_default: str | None = None) -> dict:
    """The `metadata` of a `Settings` field: its `Info`."""
    if group not in GROUPS:
        raise ValueError(f"unknown settings group {group!r}")
    return {"info": Info(help, group, tuple(dict.fromkeys(commands)), choices, shown_default)}


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "revsearch"


def _detectors() -> tuple[str, ...]:
    from revsearch.faces.detect import DETECTORS

    return tuple(DETECTORS)


def _runtimes() -> tuple[str, ...]:
    from revsearch.faces.embed import RUNTIMES

    return RUNTIMES


def _clustering() -> tuple[str, ...]:
    from revsearch.people.cluster import METHODS

    return tuple(METHODS)


def _fars() -> tuple[float, ...]:
    from revsearch.spaces.calibration import FARS

    return FARS


def _norms() -> tuple[str, ...]:
    from revsearch.norm import NORMS

    return NORMS


def _aggregations() -> tuple[str, ...]:
    from revsearch.video.track import METHODS

    return METHODS


@dataclass(frozen=True)
class Settings:
    """Run-time settings. Every field can be set as `REVSEARCH_<FIELD>` in the environment.

    `home` holds the default database, ingest reports and user calibrations.
    `db` is a Milvus Lite path (ending in `.db`) or a server URI (`http://host:19530`).
    """

    home: Path = field(default_factory=_default_home, metadata=about(
        "database", (*OPENING, *MEASURING, "models"),
        "data directory: default database, ingest reports, user calibrations",
        shown_default="~/.local/share/revsearch"))
    db: str = field(default="", metadata=about(
        "database", OPENING, "Milvus Lite file (*.db) or server URI http://host:19530",
        shown_default="HOME/revsearch.db"))
    # Milvus server only: the HNSW graph of new face collections (docs/deploy.md).
    hnsw_m: int = field(default=16, metadata=about(
        "database", (*INDEXING, "search", "stats"), "server: HNSW degree of new collections"))
    hnsw_ef_construction: int = field(default=200, metadata=about(
        "database", (*INDEXING, "search", "stats"),
        "server: HNSW build width of new collections"))

    # "face" is the product; "baseline" the AWS demo's whole-image ImageNet CNN, kept for
    # comparison (faces/baseline.py).
    pipeline: str = field(default="face", metadata=about(
        "models", MODEL, "face, or the AWS-demo whole-image baseline",
        choices=("face", "baseline")))
    backbone: str = field(default="efficientnet_lite0", metadata=about(
        "models", MODEL, "baseline CNN (onnx: --model-path)",
        choices=("efficientnet_lite0", "onnx")))
    embedder: str = field(default="sface", metadata=about(
        "models", MODEL, "face embedder: sface (fast), sface_dlib (both models fused: more "
        "accurate, ~4.5x slower ingest), dlib, onnx (--model-path)", choices=LEGACY_EMBEDDERS))
    # Embeds the mirrored face too and averages: a small accuracy gain for twice the cost.
    flip: bool = field(default=False, metadata=about(
        "models", MODEL, "flip test-time augmentation (2x embedding cost)"))
    runtime: str = field(default="auto", metadata=about(
        "models", (*ANALYSING, "models"),
        "engine for the ONNX embedders (auto: OpenVINO when installed)",
        choices=_runtimes))
    # A user-provided ArcFace-style ONNX model (embedder or backbone "onnx").
    model_path: str = field(default="", metadata=about(
        "models", MODEL, "ArcFace-style ONNX file for --embedder onnx"))
    model_sha256: str = field(default="", metadata=about(
        "models", MODEL, "expected SHA-256 of --model-path"))
    # No fixed choices: the registry depends on `home`, and resolving an unknown name
    # fails with the list of registered ones (revsearch.spaces.registry).
    space: str = field(default="", metadata=about(
        "models", MODEL, "embedding space by name, see `revsearch models` (default: the one "
        "--pipeline/--embedder/--flip name, sface)"))

    detector: str = field(default="yunet", metadata=about(
        "detection", MODEL, "face detector", choices=_detectors))
    det_score: float = field(default=0.7, metadata=about(
        "detection", ANALYSING,
        "yunet: keep faces scoring at least this (lower finds more small and profile faces)"))
    # The crop that is embedded is always cut from the full-resolution image.
    det_max_side: int = field(default=1280, metadata=about(
        "detection", ANALYSING, "yunet: shrink images to this long side for detection"))

    # A video is looked at `video_fps` frames per second at most, at most every
    # `video_every`-th frame, and `video_max_frames` frames at most.
    video_fps: float = field(default=5.0, metadata=about(
        "video", (*INDEXING, *QUERYING), "sample videos at most this many frames/s (0: all)"))
    video_every: int = field(default=1, metadata=about(
        "video", (*INDEXING, *QUERYING), "sample at most every N-th video frame"))
    video_max_frames: int = field(default=1500, metadata=about(
        "video", (*INDEXING, *QUERYING), "frames sampled per video at most"))
    # How a face track becomes stored descriptors (video/track.py; docs/experiments.md
    # compares them on YouTube Faces).
    aggregation: str = field(default="quality", metadata=about(
        "video", (*INDEXING, *QUERYING), "how a video face track becomes its descriptor",
        choices=_aggregations))
    prototypes: int = field(default=3, metadata=about(
        "video", (*INDEXING, *QUERYING, "eval"),
        "descriptors per track with --aggregation prototypes"))

    workers: int = field(default_factory=lambda: os.cpu_count() or 1, metadata=about(
        "ingest", ("index", "search", "faces", "serve", *MEASURING),
        "worker processes for ingest (Ray actors with --engine ray), threads for a query",
        shown_default="cores"))
    # Ray is an optional extra; the driver lists files and writes rows either way.
    engine: str = field(default="local", metadata=about(
        "ingest", ("index",), "where files are analysed: local worker processes, or ray "
        "actors on a Ray cluster (pip install 'revsearch[distributed]')", choices=ENGINES))
    ray_address: str = field(default="", metadata=about(
        "ingest", ("index",), "--engine ray: the cluster to join (host:6379, "
        "ray://host:10001, auto)", shown_default="start Ray on this machine"))
    progress: bool = field(default=True, metadata=about(
        "ingest", ("index", "eval"),
        "show progress (a bar on a terminal, else a log line now and then)"))

    # None means "use the calibration stored with the model".
    threshold: float | None = field(default=None, metadata=about(
        "search", DECIDING, "match threshold on the score (overrides the calibration)",
        shown_default="calibrated"))
    # The operating point: which of the calibrated thresholds decides a match. A lower
    # FAR means fewer false matches (expect about FAR x gallery size per search) and
    # more missed ones.
    far: float = field(default=1e-3, metadata=about(
        "search", DECIDING, "operating point: the false-accept rate whose calibrated "
        "threshold decides a match", choices=_fars))
    # Off by default: measured in docs/results/norm_*.md.
    norm: str = field(default="none", metadata=about(
        "search", DECIDING, "score normalisation against a cohort of the collection's "
        "faces (asnorm: AS-norm; results then carry the cosine and the normalised score)",
        choices=_norms))
    # Covered query faces (sunglasses, a mask, a hand): detected on the aligned crop,
    # then the best hits are re-ranked on the visible part (faces/occlusion.py).
    occlusion: bool = field(default=True, metadata=about(
        "search", (*QUERYING, "eval"),
        "detect covered query faces and re-rank on the visible part"))
    # Off by default: it costs a second search and a read of the candidates' vectors,
    # and ranks by a blend rather than the face's own similarity (measured in
    # docs/results/people_expansion.md).
    person_expansion: bool = field(default=False, metadata=about(
        "search", ("search", "serve"),
        "a photo query whose face belongs to a person also searches with that person's "
        "faces (photos only; needs `revsearch people`)"))
    search_ef: int = field(default=0, metadata=about(
        "search", ("search", "serve"), "server: HNSW search width",
        shown_default="max(64, 2k)"))

    # Grouping faces into persons (revsearch.people; docs/results/people_lfw.md compares
    # the methods). The threshold is a similarity for that method, not the match one.
    people_method: str = field(default="", metadata=about(
        "people", ("people", "index", "remove", "search", "serve"),
        "how faces are grouped into persons", choices=_clustering,
        shown_default="chinese_whispers"))
    people_threshold: float | None = field(default=None, metadata=about(
        "people", ("people", "index", "remove", "search", "serve"),
        "clustering threshold (cosine) of --people-method",
        shown_default="chosen per space on LFW development people"))

    # Decoding refuses larger inputs: decompression bombs and runaway files.
    max_pixels: int = field(default=100_000_000, metadata=about(
        "limits", ANALYSING, "refuse images with more pixels than this"))
    max_file_bytes: int = field(default=200 * 1024 * 1024, metadata=about(
        "limits", (*INDEXING, *QUERYING, "eval"), "refuse image files larger than this",
        shown_default="200 MiB"))
    max_video_bytes: int = field(default=4 * 1024 * 1024 * 1024, metadata=about(
        "limits", (*INDEXING, *QUERYING), "refuse videos larger than this",
        shown_default="4 GiB"))
    max_upload_bytes: int = field(default=100 * 1024 * 1024, metadata=about(
        "server", ("serve",), "largest request body accepted (HTTP 413 above)",
        shown_default="100 MiB"))
    # Folders the server keeps indexed (serve/watch.py), and more it may index when a
    # client asks (POST /api/jobs): a client never names an arbitrary path.
    watch: tuple[str, ...] = field(default=(), metadata=about(
        "server", ("serve",), "index these folders at start and keep them current (repeat "
        f"the flag, or separate folders with {os.pathsep!r})"))
    allow: tuple[str, ...] = field(default=(), metadata=about(
        "server", ("serve",), "more folders POST /api/jobs may index (watched ones may)"))
    # File-system notifications can be missed (network shares, a full inotify queue).
    watch_interval: float = field(default=300.0, metadata=about(
        "server", ("serve",), "also rescan watched folders every X seconds (0: never)"))
    # Searches are what a user waits for; a background ingest takes what CPU is left.
    # Without it the ingest's worker processes take the cores and searches queue behind
    # them (bench/bench_watch.py --ingest-nice 0).
    ingest_nice: int = field(default=10, metadata=about(
        "server", ("serve",), "run background ingest jobs N nice levels below the "
        "searches (Linux; 0: same priority)"))

    @property
    def sampling(self):
        from revsearch.video.frames import Sampling

        return Sampling(fps=self.video_fps, every=self.video_every,
                        max_frames=self.video_max_frames)

    @property
    def db_uri(self) -> str:
        return self.db or str(self.home / "revsearch.db")


@dataclass(frozen=True)
class Declared:
    """One setting as declared: its name, value type, default and `Info`."""

    name: str
    kind: type  # bool, int, float, str, Path (Optional unwrapped), or tuple (of paths)
    optional: bool
    default: object  # dataclasses.MISSING when computed at run time
    info: Info

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def choices(self) -> tuple[str, ...] | None:
        """The allowed values, asking the owning registry if need be."""
        c = self.info.choices
        return tuple(c()) if callable(c) else c

    def shown_default(self) -> str:
        if self.info.shown_default is not None:
            return self.info.shown_default
        if self.kind is bool:
            return "on" if self.default else "off"
        return "" if self.default in (None, "", (), dataclasses.MISSING) else str(self.default)


def declared() -> list[Declared]:
    """Every setting, in declaration order."""
    hints = typing.get_type_hints(Settings)
    out = []
    for f in dataclasses.fields(Settings):
        kinds = [k for k in typing.get_args(hints[f.name]) if k is not type(None)]
        if typing.get_origin(hints[f.name]) is tuple:
            kinds = [tuple]
        out.append(Declared(f.name, kinds[0] if kinds else hints[f.name],
                            type(None) in typing.get_args(hints[f.name]),
                            f.default, f.metadata["info"]))
    return out


def _paths(values: str | Sequence[str]) -> tuple[str, ...]:
    """A list setting's folders: each value may hold several, separated as in PATH."""
    parts = [values] if isinstance(values, str) else list(values)
    return tuple(p for part in parts for p in str(part).split(os.pathsep) if p.strip())


def _coerce(raw: str, setting: Declared) -> object:
    if setting.kind is tuple:
        return _paths(raw)
    if setting.kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if setting.kind is Path:
        return Path(raw).expanduser()
    try:
        return setting.kind(raw)
    except ValueError:
        raise SettingsError(f"{setting.env}={raw!r} is not a valid "
                            f"{setting.kind.__name__}") from None


def _check_choice(setting: Declared, value: object, source: str) -> None:
    allowed = setting.choices()
    if allowed is not None and value not in allowed:
        raise SettingsError(f"{source}={value!r}: choose from {', '.join(allowed)}")


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, then apply non-None keyword overrides.

    An empty environment variable counts as unset (for text settings, as empty).
    """
    values: dict[str, object] = {}
    by_name = {s.name: s for s in declared()}
    for s in by_name.values():
        raw = os.environ.get(s.env)
        if raw is None or (not raw.strip() and s.kind is not str):
            continue
        values[s.name] = _coerce(raw, s)
        if values[s.name] != s.default:
            _check_choice(s, values[s.name], s.env)
    for name, value in overrides.items():
        if value is None:
            continue
        if name in by_name and by_name[name].kind is tuple:
            value = _paths(value)
        if name in by_name and value != by_name[name].default:
            _check_choice(by_name[name], value, name)
        values[name] = value
    if "home" in values:
        values["home"] = Path(str(values["home"])).expanduser()
    return Settings(**values)
