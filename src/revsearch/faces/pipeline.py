"""Detector + embedder as one unit: a BGR image in, its faces with embeddings out.

The same unit serves the face pipeline (YuNet/dlib + SFace/dlib/ONNX, cosine) and the
AWS baseline (whole image + ImageNet CNN, L2), so everything downstream is shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from revsearch.config import Settings
from revsearch.faces.detect import Face, create_detector
from revsearch.faces.embed import create_embedder
from revsearch.video.frames import Sampling, read_frames
from revsearch.video.track import Detection, Track, aggregate, frame_quality, link


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
                                        model_sha256=settings.model_sha256,
                                        runtime=settings.runtime)
        self.dim = self.embedder.dim

    def _init_baseline(self, settings: Settings, threads: int) -> None:
        from revsearch.faces import baseline

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

    def track_video(self, path: str | os.PathLike, sampling: Sampling,
                    max_pixels: int = 50_000_000,
                    transform: Callable[[np.ndarray, int], np.ndarray] | None = None,
                    ) -> VideoAnalysis:
        """Sample a video's frames, find and embed every face, link them into tracks.

        `transform(image, n)` may alter the n-th sampled frame first (experiments).
        """
        seen = {"frames": 0, "width": 0, "height": 0}

        def detections() -> Iterator[list[Detection]]:
            for frame in read_frames(path, sampling, max_pixels):
                if transform is not None:
                    frame.image = transform(frame.image, seen["frames"])
                seen["frames"] += 1
                seen["height"], seen["width"] = frame.image.shape[:2]
                found = self.analyze(frame.image)
                yield [Detection(frame.index, frame.time, ef.face, ef.embedding,
                                 self._quality(ef.face)) for ef in found]

        tracks = link(detections())
        return VideoAnalysis(seen["frames"], seen["width"], seen["height"], tracks)

    def _quality(self, face: Face) -> float:
        # The baseline's "face" is the whole frame: every frame is as good as another.
        return 1.0 if self.settings.pipeline == "baseline" else frame_quality(face)

    def describe_track(self, track: Track) -> np.ndarray:
        """The stored descriptor(s) of a track, by the configured aggregation."""
        if self.metric == "L2":  # raw baseline features: a plain mean, like the frames
            return track.embeddings().mean(axis=0, keepdims=True).astype(np.float32)
        return aggregate(track.embeddings(), track.qualities(), self.settings.aggregation,
                         k=self.settings.prototypes)


@dataclass
class VideoAnalysis:
    """A video's sampled frame count, frame size and face tracks."""

    frames: int
    width: int
    height: int
    tracks: list[Track]


@dataclass(frozen=True)
class SpaceSpec:
    """How an embedding space is stored and searched, known without loading a model."""

    dim: int | None
    metric: str
    index_params: dict | None
    search_ef: int | None


_KNOWN_DIMS = {"sface": 128, "dlib": 128, "sface_dlib": 256,
               "baseline_efficientnet_lite0": 1280}


def space_spec(settings: Settings) -> SpaceSpec:
    key = settings.pipeline_key.removesuffix("_flip")
    if settings.pipeline == "baseline":
        from revsearch.faces import baseline

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


def main_track(tracks: list[Track]) -> int | None:
    """The most prominent track (largest summed face area): a video's person of interest."""
    if not tracks:
        return None
    return max(range(len(tracks)), key=lambda i: tracks[i].prominence)
