"""Detector + embedder as one unit: a BGR image in, its faces with embeddings out.

The same unit serves the face pipeline (YuNet/dlib + SFace/dlib/ONNX, cosine) and the
AWS baseline (whole image + ImageNet CNN, L2), so everything downstream is shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import Settings
from .detect import Face, create_detector
from .embed import create_embedder


@dataclass
class EmbeddedFace:
    """A detected face with its index in the image's left-to-right order and its vector."""

    index: int
    face: Face
    embedding: np.ndarray


class Pipeline:
    """Builds the detector and embedder named in `settings` and runs them together."""

    metric = "COSINE"
    index_params: dict | None = None  # None: the store's default for its backend
    search_ef: int | None = None

    def __init__(self, settings: Settings, threads: int = 1) -> None:
        self.settings = settings
        self.key = settings.pipeline_key
        if settings.pipeline == "baseline":
            self._init_baseline(settings, threads)
            return
        if settings.detector == "yunet":
            self.detector = create_detector("yunet", score_threshold=settings.det_score,
                                            max_side=settings.det_max_side)
        else:
            self.detector = create_detector(settings.detector)
        self.embedder = create_embedder(settings.embedder, flip=settings.flip, threads=threads,
                                        model_path=settings.model_path,
                                        model_sha256=settings.model_sha256)
        self.dim = self.embedder.dim

    def _init_baseline(self, settings: Settings, threads: int) -> None:
        from . import baseline

        self.detector = baseline.WholeImageDetector()
        self.embedder = baseline.ImageNetEmbedder(settings.backbone, settings.model_path,
                                                  settings.model_sha256, threads=threads)
        self.dim = self.embedder.dim
        self.metric = baseline.METRIC
        self.index_params = baseline.INDEX_PARAMS
        self.search_ef = baseline.SEARCH_EF

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detector.detect(image)

    def analyze(self, image: np.ndarray) -> list[EmbeddedFace]:
        faces = self.detector.detect(image)
        vectors = self.embedder.embed(image, faces)
        return [EmbeddedFace(i, f, v) for i, (f, v) in enumerate(zip(faces, vectors, strict=True))]


@dataclass(frozen=True)
class SpaceSpec:
    """How an embedding space is stored and searched, known without loading a model."""

    dim: int | None
    metric: str
    index_params: dict | None
    search_ef: int | None


_KNOWN_DIMS = {"sface": 128, "dlib": 128, "baseline_efficientnet_lite0": 1280}


def space_spec(settings: Settings) -> SpaceSpec:
    key = settings.pipeline_key.removesuffix("_flip")
    if settings.pipeline == "baseline":
        from . import baseline

        return SpaceSpec(_KNOWN_DIMS.get(key), baseline.METRIC, baseline.INDEX_PARAMS,
                         baseline.SEARCH_EF)
    return SpaceSpec(_KNOWN_DIMS.get(key), "COSINE", None, None)


def central_face(faces: list[Face], shape: tuple[int, ...]) -> int | None:
    """Index of the face whose centre is nearest the image centre (LFW's labelled face)."""
    if not faces:
        return None
    cy, cx = shape[0] / 2.0, shape[1] / 2.0
    return min(range(len(faces)),
               key=lambda i: (faces[i].center[0] - cx) ** 2 + (faces[i].center[1] - cy) ** 2)


def largest_face(faces: list[Face]) -> int | None:
    if not faces:
        return None
    return max(range(len(faces)), key=lambda i: faces[i].area)
