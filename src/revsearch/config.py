"""All configuration in one place: defaults, `REVSEARCH_*` environment variables, overrides.

Precedence, lowest to highest: the defaults below, environment variables, keyword
arguments (which is what CLI flags become).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

ENV_PREFIX = "REVSEARCH_"


def _default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "revsearch"


@dataclass(frozen=True)
class Settings:
    """Run-time settings. Every field can be set as `REVSEARCH_<FIELD>` in the environment.

    `home` holds the default database, ingest reports and user calibrations.
    `db` is a Milvus Lite path (ending in `.db`) or a server URI (`http://host:19530`).
    """

    home: Path = field(default_factory=_default_home)
    db: str = ""
    # "face": detect, align and embed every face (the product). "baseline": the AWS
    # demo's whole-image ImageNet CNN, kept for comparison (baseline.py).
    pipeline: str = "face"
    # The embedding space by name (`revsearch models` lists them; revsearch.spaces). Empty:
    # the space the older settings name (pipeline, embedder, backbone, model_path).
    space: str = ""
    backbone: str = "efficientnet_lite0"
    detector: str = "yunet"
    # "sface" (default), "sface_dlib" (SFace and dlib fused: more accurate, ~4.5x
    # slower ingest), "dlib", or "onnx" (a model file of yours: model_path, model_sha256).
    embedder: str = "sface"
    # Flip test-time augmentation: embeds the mirrored face too and averages. About 2x the
    # embedding cost for a small accuracy gain; off by default.
    flip: bool = False
    # Engine for the ONNX embedders: "openvino", "onnxruntime", or "auto" (OpenVINO when
    # installed: same float32 vectors, about 2x faster per face here).
    runtime: str = "auto"
    # A user-provided ArcFace-style ONNX model (embedder "onnx") and its expected digest.
    model_path: str = ""
    model_sha256: str = ""
    # YuNet keeps faces scoring at least this; lower finds more small and profile faces.
    det_score: float = 0.7
    # Images are shrunk so their long side is at most this for detection only; the crop
    # that is embedded is always cut from the full-resolution image.
    det_max_side: int = 1280
    # Refuse to decode images with more pixels than this (decompression bombs).
    max_pixels: int = 100_000_000
    max_file_bytes: int = 200 * 1024 * 1024
    # Videos: look at most `video_fps` frames per second (0: every frame), at most every
    # `video_every`-th frame, and at most `video_max_frames` frames per video.
    video_fps: float = 5.0
    video_every: int = 1
    video_max_frames: int = 1500
    max_video_bytes: int = 4 * 1024 * 1024 * 1024
    # Milvus server only: the HNSW graph degree and build width of new face collections,
    # and the search width (0: max(64, 2k)). For about a million faces in one segment,
    # 32 / 400 / 2048 give recall@10 0.994 (docs/results/scale_m32_1seg.md).
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    search_ef: int = 0
    # `revsearch serve` refuses request bodies larger than this (HTTP 413).
    max_upload_bytes: int = 100 * 1024 * 1024
    # How a face track becomes stored descriptors: mean, quality, prototypes or single
    # (track.py; docs/experiments.md compares them on YouTube Faces).
    aggregation: str = "quality"
    prototypes: int = 3
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Match / no-match threshold on cosine similarity; empty means "use the calibration
    # stored with the model".
    threshold: float | None = None
    progress: bool = True

    @property
    def sampling(self):
        from revsearch.video.frames import Sampling

        return Sampling(fps=self.video_fps, every=self.video_every,
                        max_frames=self.video_max_frames)

    @property
    def db_uri(self) -> str:
        return self.db or str(self.home / "revsearch.db")


def _coerce(value: str, kind: type | str) -> object:
    kind_name = kind if isinstance(kind, str) else kind.__name__
    if "bool" in kind_name:
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if "float" in kind_name:
        return float(value) if value.strip() else None
    if "int" in kind_name:
        return int(value)
    if "Path" in kind_name:
        return Path(value).expanduser()
    return value


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, then apply non-None keyword overrides."""
    values: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        raw = os.environ.get(ENV_PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = _coerce(raw, f.type)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "home" in values:
        values["home"] = Path(str(values["home"])).expanduser()
    return Settings(**values)
