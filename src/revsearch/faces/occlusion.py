"""Partly covered faces: find the covered part of a face, and compare faces on the rest.

Detection looks at the aligned face crop (the 112x112 crop the embedder sees, so the
same face parts sit at the same place in every crop). The crop is cut into square
cells; a cell is *flat* when its grey levels barely vary. Skin, hair and eyes carry
texture (pores, edges, JPEG noise); sunglasses, a mask, a hand in shadow or a sticker
over a face carry much less. A face counts as covered when the largest 4-connected
group of flat cells inside the face area is large enough. Where that group sits names
the region: over both eyes ("eyes"), over the mouth and below the nose ("lower"), or
elsewhere ("other").

Matching on what is visible: the covered cells (grown a little) are painted with one
neutral grey in the query crop *and* in the crops of the best candidates, which are
embedded again, so both sides of each comparison see the same face parts. Candidates
come from the ordinary search; their crops are cut again from their files with the
stored landmarks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from revsearch.faces.align import ARCFACE_TEMPLATE_112, align_face, similarity_transform

log = logging.getLogger(__name__)

REGIONS = ("none", "eyes", "lower", "other")
CROP = 112  # the detector's crop size: the template's own
FILL = (128, 128, 128)  # BGR grey painted over the covered cells on both sides


@dataclass(frozen=True)
class OcclusionSettings:
    """The detector's and the matcher's parameters (chosen on LFW DevTrain people, see
    docs/experiments.md, "Occluded single photos")."""

    cell: int = 4  # pixels of the 112x112 crop per cell side
    flat_std: float = 1.0  # a cell is flat below this grey-level standard deviation
    min_cells: int = 64  # covered: the largest flat group has at least this many cells
    grow: int = 2  # cells added around the covered group before painting it
    rerank: int = 15  # candidates embedded again with the same part covered
    weight: float = 0.5  # similarity = weight * covered-part score + (1 - weight) * plain
    # A query photo where the detector finds no face is looked at again with this lower
    # YuNet score: a covered face scores lower (the query only, never the index).
    fallback_score: float = 0.3
    # Re-ranking embeds both sides of each comparison itself, so its vectors need not
    # match the stored float32 ones: bfloat16 (OpenVINO, on a CPU that has it) makes its
    # embeddings cheaper; "f32" computes exactly as the index does.
    precision: str = "bf16"


@dataclass
class Occlusion:
    """What covers a face: `region` is one of REGIONS; `fraction` is the share of the
    face area's cells found covered; `mask` (crop pixels, True = covered, grown) is what
    matching paints over, None when the face is not covered."""

    region: str = "none"
    fraction: float = 0.0
    cells: int = 0
    mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def covered(self) -> bool:
        return self.region != "none"


def _face_area(cells: int) -> np.ndarray:
    """Cells inside the face on the template: the ellipse through the forehead, cheeks
    and chin, which leaves out the crop's corners (background, hair, shoulders)."""
    centres = (np.arange(cells) + 0.5) * (CROP / cells)
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    cx, cy, rx, ry = 56.0, 62.0, 50.0, 58.0
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def _inside_image(shape: tuple[int, ...], landmarks: np.ndarray, cells: int) -> np.ndarray:
    """Per cell: whether the whole cell comes from inside the image (not the warp's
    black border, which is flat and would read as covered)."""
    matrix = similarity_transform(np.asarray(landmarks, np.float64).reshape(5, 2),
                                  ARCFACE_TEMPLATE_112)
    inverse = cv2.invertAffineTransform(matrix)
    size = CROP // cells
    edges = np.arange(cells + 1) * size
    ys, xs = np.meshgrid(edges, edges, indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], axis=0)
    src = (inverse @ points).T.reshape(cells + 1, cells + 1, 2)
    height, width = shape[:2]
    ok = (src[..., 0] >= 0) & (src[..., 0] <= width - 1) & (src[..., 1] >= 0) & \
        (src[..., 1] <= height - 1)
    # A cell is inside when its four corners are (the warp is affine).
    return ok[:-1, :-1] & ok[1:, :-1] & ok[:-1, 1:] & ok[1:, 1:]


class OcclusionDetector:
    """Says whether, and where, a face is covered (see module docstring)."""

    def __init__(self, settings: OcclusionSettings | None = None) -> None:
        self.settings = settings or OcclusionSettings()
        if CROP % self.settings.cell:
            raise ValueError(f"cell size must divide {CROP}, got {self.settings.cell}")
        self.cells = CROP // self.settings.cell
        self._face = _face_area(self.cells)
        centre = (np.arange(self.cells) + 0.5) * self.settings.cell
        self._eye_row = int(np.argmin(abs(centre - ARCFACE_TEMPLATE_112[:2, 1].mean())))
        self._eye_cols = [int(np.argmin(abs(centre - x))) for x in ARCFACE_TEMPLATE_112[:2, 0]]
        self._nose_row = int(np.argmin(abs(centre - ARCFACE_TEMPLATE_112[2, 1])))
        self._mouth_row = int(np.argmin(abs(centre - ARCFACE_TEMPLATE_112[3:, 1].mean())))

    def cell_std(self, crop: np.ndarray) -> np.ndarray:
        """(cells, cells) grey-level standard deviation of each cell of a 112x112 crop."""
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
        n, c = self.cells, self.settings.cell
        return grey.reshape(n, c, n, c).std(axis=(1, 3))

    def inspect(self, image: np.ndarray, landmarks: np.ndarray,
                crop: np.ndarray | None = None) -> Occlusion:
        """The occlusion of the face with these 5 landmarks in a BGR image."""
        if crop is None:
            crop = align_face(image, landmarks, CROP)
        inside = _inside_image(image.shape, landmarks, self.cells)
        flat = (self.cell_std(crop) < self.settings.flat_std) & inside & self._face
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            flat.astype(np.uint8), connectivity=4)
        if count <= 1:
            return Occlusion()
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        cells = int(stats[best, cv2.CC_STAT_AREA])
        fraction = cells / float(self._face.sum())
        if cells < self.settings.min_cells:
            return Occlusion(fraction=fraction, cells=cells)
        group = labels == best
        return Occlusion(self._region(group), fraction, cells, self._pixel_mask(group))

    def _region(self, group: np.ndarray) -> str:
        rows = np.flatnonzero(group.any(axis=1))
        eye_cells = group[self._eye_row, self._eye_cols]
        if eye_cells.all():
            return "eyes"
        if rows.min() > self._eye_row and group[self._mouth_row].any() and \
                rows.min() <= self._mouth_row:
            return "lower"
        return "other"

    def _pixel_mask(self, group: np.ndarray) -> np.ndarray:
        grown = group.astype(np.uint8)
        if self.settings.grow:
            size = 2 * self.settings.grow + 1
            grown = cv2.dilate(grown, np.ones((size, size), np.uint8))
        c = self.settings.cell
        return np.kron(grown, np.ones((c, c), np.uint8)).astype(bool)


def cover(crops: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copies of aligned crops (n, 112, 112, 3) with the masked pixels painted grey."""
    out = np.array(crops, copy=True)
    out[:, mask] = FILL
    return out


def supports(embedder: object) -> bool:
    """Whether the embedder can embed ready crops (the ONNX embedders and their fusions)."""
    return callable(getattr(embedder, "embed_aligned", None)) and \
        getattr(embedder, "size", CROP) == CROP


def crops_of(images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray]) -> np.ndarray:
    """(n, 112, 112, 3) aligned crops, one per (image, landmarks) pair."""
    return np.stack([align_face(im, lm, CROP) for im, lm in zip(images, landmarks,
                                                                 strict=True)])


class VisibleMatcher:
    """Occlusion handling for query faces: detect the cover, then compare the query with
    candidates on the visible part only (both sides painted over the same cells)."""

    def __init__(self, embedder: object, settings: OcclusionSettings | None = None) -> None:
        if not supports(embedder):
            raise ValueError(f"occlusion handling needs an embedder of {CROP}x{CROP} "
                             f"aligned crops; {getattr(embedder, 'name', embedder)!r} is not")
        self.settings = settings or OcclusionSettings()
        self.detector = OcclusionDetector(self.settings)
        at = getattr(embedder, "with_precision", None)
        self.embedder = at(self.settings.precision) if at else embedder

    def inspect(self, image: np.ndarray, landmarks: np.ndarray) -> Occlusion:
        return self.detector.inspect(image, landmarks)

    def rescore(self, image: np.ndarray, landmarks: np.ndarray, occlusion: Occlusion,
                candidates: np.ndarray, plain: np.ndarray) -> np.ndarray:
        """The scores of aligned candidate crops (n, 112, 112, 3) against the query face,
        on what the occlusion leaves visible, blended with their `plain` scores."""
        if occlusion.mask is None or not len(candidates):
            return np.asarray(plain, np.float32)
        query = cover(align_face(image, landmarks, CROP)[None], occlusion.mask)
        vectors = self.embedder.embed_aligned(np.concatenate([query, cover(candidates,
                                                                            occlusion.mask)]))
        visible = vectors[1:] @ vectors[0]
        w = self.settings.weight
        return (w * visible + (1.0 - w) * np.asarray(plain, np.float32)).astype(np.float32)


def create_matcher(embedder: object,
                   settings: OcclusionSettings | None = None) -> VisibleMatcher | None:
    """A matcher for this embedder, or None (with a log line) when it cannot embed crops
    (dlib and the baseline): their searches run without occlusion handling."""
    if not supports(embedder):
        log.info("occlusion handling is off: embedder %s does not embed aligned crops",
                 getattr(embedder, "name", embedder))
        return None
    return VisibleMatcher(embedder, settings)
