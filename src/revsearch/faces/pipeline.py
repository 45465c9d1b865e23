"""Detector + embedder as one unit: a BGR image in, its faces with embeddings out.

The same unit serves every embedding space: face spaces (YuNet/dlib + SFace/dlib/ONNX,
cosine) and the AWS baseline (whole image + ImageNet CNN, L2), so everything downstream
is shared. What differs between them is declared by the space (revsearch.spaces).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from revsearch.config import Settings
from revsearch.faces.detect import Detector, Face
from revsearch.spaces import Space, space_for
from revsearch.video.frames import Sampling, read_frames
from revsearch.video.track import Detection, Track, aggregate, frame_quality, link


@dataclass
class EmbeddedFace:
    """A detected face with its index in the image's left-to-right order and its vector."""

    index: int
    face: Face
    embedding: np.ndarray


class Pipeline:
    """The detector and embedder of one embedding space, run together.

    `space` defaults to the one the settings name (revsearch.spaces); the settings give
    the run-time knobs (detector threshold, ONNX runtime, video sampling, aggregation).
    """

    def __init__(self, settings: Settings, threads: int = 1, space: Space | None = None) -> None:
        self.settings = settings
        self.space = space or space_for(settings)
        self.key = self.space.key
        self.metric = self.space.metric
        self.detector = self.space.create_detector(settings)
        self.embedder = self.space.create_embedder(settings, threads)
        self.dim = self.embedder.dim
        self._fallback: Detector | None = None

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detector.detect(image)

    def detect_query(self, image: np.ndarray) -> list[Face]:
        """A query photo's faces: as `detect`; with occlusion handling on, a photo where
        YuNet finds none is looked at again with a lower score threshold (a covered face
        scores lower). The index never uses this: only the person being searched for."""
        faces = self.detector.detect(image)
        if faces or not self.settings.occlusion or \
                self.space.detector_name(self.settings) != "yunet":
            return faces
        if self._fallback is None:
            from revsearch.faces.detect import create_detector
            from revsearch.faces.occlusion import OcclusionSettings

            score = min(self.settings.det_score, OcclusionSettings().fallback_score)
            self._fallback = create_detector("yunet", score_threshold=score,
                                             max_side=self.settings.det_max_side)
        return self._fallback.detect(image)

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
        return frame_quality(face) if self.space.weighs_frames else 1.0

    def describe_track(self, track: Track) -> np.ndarray:
        """The stored descriptor(s) of a track, by the space's aggregation."""
        return aggregate(track.embeddings(), track.qualities(),
                         self.space.aggregation(self.settings), k=self.settings.prototypes)


@dataclass
class VideoAnalysis:
    """A video's sampled frame count, frame size and face tracks."""

    frames: int
    width: int
    height: int
    tracks: list[Track]


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
