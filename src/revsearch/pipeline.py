"""Detector + embedder as one unit: a BGR image in, its faces with embeddings out."""

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


class FacePipeline:
    """Builds the detector and embedder named in `settings` and runs them together."""

    def __init__(self, settings: Settings, threads: int = 1) -> None:
        self.settings = settings
        if settings.detector == "yunet":
            self.detector = create_detector("yunet", score_threshold=settings.det_score,
                                            max_side=settings.det_max_side)
        else:
            self.detector = create_detector(settings.detector)
        self.embedder = create_embedder(settings.embedder, flip=settings.flip, threads=threads,
                                        model_path=settings.model_path,
                                        model_sha256=settings.model_sha256)
        self.key = settings.pipeline_key
        self.dim = self.embedder.dim

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detector.detect(image)

    def analyze(self, image: np.ndarray) -> list[EmbeddedFace]:
        faces = self.detector.detect(image)
        vectors = self.embedder.embed(image, faces)
        return [EmbeddedFace(i, f, v) for i, (f, v) in enumerate(zip(faces, vectors, strict=True))]


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
