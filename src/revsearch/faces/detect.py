"""Face detectors: image in, every face out, each with a box, 5 landmarks and a score.

Two implementations behind one protocol:

- `YuNetDetector` (default): a 75k-parameter CNN (OpenCV's `FaceDetectorYN`); finds
  small, rotated and partly profile faces; ~3 ms for a 250x250 image on one core.
- `DlibHogDetector`: HOG + linear SVM, landmarks from dlib's 68-point model. Frontal
  faces of at least ~80 px only (fewer with `upsample=1`, at 4x the cost); slower and
  misses more, kept as the classic reference pipeline.

Landmark order is the same for both: eye, eye, nose tip, mouth corner, mouth corner,
image-left first, which is the order `align.ARCFACE_TEMPLATE_112` expects.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from revsearch.faces.models import model_path


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the (upright) image."""

    box: tuple[float, float, float, float]  # x, y, width, height
    landmarks: np.ndarray  # (5, 2) float32
    score: float

    @property
    def area(self) -> float:
        return max(self.box[2], 0.0) * max(self.box[3], 0.0)

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2.0, y + h / 2.0


@runtime_checkable
class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in a BGR uint8 image, ordered left to right."""
        ...


def _order(faces: list[Face]) -> list[Face]:
    # Left to right is what a person reading "face 0, face 1" expects from a picture.
    return sorted(faces, key=lambda f: (f.box[0], f.box[1]))


class YuNetDetector:
    """YuNet through `cv2.FaceDetectorYN` (see module docstring for trade-offs)."""

    name = "yunet"

    def __init__(self, score_threshold: float = 0.7, nms_threshold: float = 0.3,
                 max_side: int = 1280, top_k: int = 5000) -> None:
        self.max_side = max_side
        self._net = cv2.FaceDetectorYN.create(
            str(model_path("yunet")), "", (320, 320), score_threshold, nms_threshold, top_k
        )
        # The OpenCV object keeps per-call state (input size); one call at a time.
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray) -> list[Face]:
        height, width = image.shape[:2]
        scale = min(1.0, self.max_side / float(max(height, width)))
        small = image
        if scale < 1.0:
            small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                               interpolation=cv2.INTER_AREA)
        with self._lock:
            self._net.setInputSize((small.shape[1], small.shape[0]))
            _, rows = self._net.detect(small)
        if rows is None:
            return []
        faces = []
        for row in rows:
            row = row.astype(np.float64) / np.array([scale] * 14 + [1.0])
            x, y, w, h = (float(v) for v in row[:4])
            faces.append(Face((x, y, w, h), row[4:14].reshape(5, 2).astype(np.float32),
                              float(row[14])))
        return _order(faces)


class DlibHogDetector:
    """dlib's HOG frontal face detector with 5 landmarks from its 68-point model."""

    name = "dlib"

    def __init__(self, upsample: int = 1, score_threshold: float = 0.0) -> None:
        import dlib

        self.upsample = upsample
        self.score_threshold = score_threshold
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(model_path("dlib_shape68")))
        self._dlib = dlib

    def detect(self, image: np.ndarray) -> list[Face]:
        rgb = np.ascontiguousarray(image[:, :, ::-1])
        rects, scores, _ = self._detector.run(rgb, self.upsample, self.score_threshold)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            pts = self._shape(rgb, rect)
            p = np.array([[pts.part(i).x, pts.part(i).y] for i in range(68)], dtype=np.float32)
            landmarks = np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
            box = (float(rect.left()), float(rect.top()), float(rect.width()), float(rect.height()))
            faces.append(Face(box, landmarks.astype(np.float32), float(score)))
        return _order(faces)


class WholeImageDetector:
    """Reports the whole image as one region: the baseline does not look for faces."""

    name = "whole"

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = image.shape[:2]
        return [Face((0.0, 0.0, float(w), float(h)), np.zeros((5, 2), np.float32), 1.0)]


DETECTORS = {"yunet": YuNetDetector, "dlib": DlibHogDetector, "whole": WholeImageDetector}


def create_detector(name: str = "yunet", **options: object) -> Detector:
    """A detector by name ('yunet', 'dlib', or 'whole': the whole image as one region,
    for the baseline); options go to its constructor."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose from {sorted(DETECTORS)}") from None
    return cls(**options)
