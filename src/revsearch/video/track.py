"""Face tracks: link per-frame detections into tracks, rate each frame, aggregate a track.

Linking (`link`) is greedy on a combined affinity: a detection continues a track when its
box overlaps the track's last box *and* its embedding is not far from the track's, or,
after a short gap (the face was missed or hidden), when the embedding is close and the
face is near enough to where the track was (a person walks, they do not jump).
Box overlap keeps two people apart when they stand side by side; embedding continuity
keeps a track from jumping to a neighbour when boxes cross.

Frame quality (`frame_quality`) multiplies three factors in [0, 1]: the detector's score
raised to the 8th power, face size, and frontality (nose position between the eyes,
from the landmarks). The detector's score is the cue that drops when a face is partly
covered (mean 0.93 -> 0.88 on YouTube Faces frames with synthetic occluders); the power
turns that small drop into a large weight difference. Sharpness (variance of the
Laplacian) is deliberately left out: an occluder's hard edges make a face look sharper.

Aggregation (`aggregate`) turns a track's frame embeddings into descriptors:

- `mean`: mean of the unit vectors, re-normalised. Averaging cancels per-frame noise.
- `quality`: the same, weighted by frame quality, then re-weighted by consistency: a
  frame whose embedding disagrees with the track's consensus (an occluded or
  mis-detected frame) is down-weighted (a few rounds of a soft outlier filter).
- `prototypes`: up to `k` descriptors (quality-weighted means of k-means clusters of the
  frames), compared set to set by their best pair (`set_similarity`). Keeps distinct
  looks (pose, lighting) apart instead of blurring them into one average.
- `single`: the best-quality frame alone (what an image search would use).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from revsearch.faces.detect import Face
from revsearch.faces.embed import l2_normalize

METHODS = ("mean", "quality", "prototypes", "single")


@dataclass
class Detection:
    """One face in one sampled frame."""

    frame: int
    time: float
    face: Face
    embedding: np.ndarray
    quality: float = 1.0


@dataclass
class Track:
    """One person's face followed through a video."""

    index: int
    detections: list[Detection] = field(default_factory=list)

    @property
    def start(self) -> float:
        return self.detections[0].time

    @property
    def end(self) -> float:
        return self.detections[-1].time

    @property
    def best(self) -> Detection:
        """The best-quality detection: the track's thumbnail."""
        return max(self.detections, key=lambda d: d.quality)

    @property
    def prominence(self) -> float:
        """How much of the video this face fills: summed face area over its frames."""
        return float(sum(d.face.area for d in self.detections))

    def embeddings(self) -> np.ndarray:
        return np.stack([d.embedding for d in self.detections])

    def qualities(self) -> np.ndarray:
        return np.array([d.quality for d in self.detections], dtype=np.float64)


# -- quality ---------------------------------------------------------------------------
def frame_quality(face: Face, min_size: float = 48.0, score_power: float = 8.0) -> float:
    """A [0, 1] score of how useful this face is for recognition (see module doc)."""
    size = min(face.box[2], face.box[3])
    size_factor = float(np.clip(size / min_size, 0.0, 1.0))
    score = float(np.clip(face.score, 0.0, 1.0)) ** score_power
    return score * size_factor * frontality(face.landmarks)


def frontality(landmarks: np.ndarray) -> float:
    """1 for a frontal face, falling towards 0 as the nose leaves the eyes' midline."""
    eye_l, eye_r, nose = landmarks[0], landmarks[1], landmarks[2]
    inter = float(np.linalg.norm(eye_r - eye_l))
    if inter < 1e-6:
        return 0.0
    mid = (eye_l + eye_r) / 2.0
    axis = (eye_r - eye_l) / inter
    offset = abs(float(np.dot(nose - mid, axis))) / inter  # ~0 frontal, ~0.5 at 45 degrees
    return float(np.clip(1.0 - 1.5 * offset, 0.05, 1.0))


# -- linking ---------------------------------------------------------------------------
def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    inter = max(0.0, w) * max(0.0, h)
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def link(frames: Iterable[list[Detection]], *, min_iou: float = 0.2,
         min_similarity: float = 0.2, reappear_similarity: float = 0.5,
         max_gap: float = 3.0, max_speed: float = 10.0) -> list[Track]:
    """Link each frame's detections (frames in time order) into tracks.

    A detection joins an active track when (overlap >= `min_iou` and cosine to the
    track's mean >= `min_similarity`) or (cosine >= `reappear_similarity` and its
    centre within one face width plus `max_speed` face widths per second of the
    track's last centre); a track not seen for `max_gap` seconds is closed. Tracks
    come out in order of first appearance (then left to right), numbered from 0.
    """
    active: list[tuple[Track, np.ndarray]] = []  # track, running sum of unit embeddings
    closed: list[Track] = []
    for detections in frames:
        if not detections:
            continue
        now = detections[0].time
        still = []
        for track, total in active:
            if now - track.end <= max_gap:
                still.append((track, total))
            else:
                closed.append(track)
        active = still
        pairs = []
        for ti, (track, total) in enumerate(active):
            mean = total / max(np.linalg.norm(total), 1e-12)
            last = track.detections[-1]
            for di, det in enumerate(detections):
                sim = float(np.dot(mean, det.embedding))
                overlap = iou(last.face.box, det.face.box)
                reach = last.face.box[2] * (1.0 + max_speed * (det.time - last.time))
                near = np.hypot(*np.subtract(det.face.center, last.face.center)) <= reach
                if (overlap >= min_iou and sim >= min_similarity) or \
                        (near and sim >= reappear_similarity):
                    pairs.append((sim + overlap, ti, di))
        used_t, used_d = set(), set()
        for _, ti, di in sorted(pairs, reverse=True):
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            track, total = active[ti]
            track.detections.append(detections[di])
            active[ti] = (track, total + detections[di].embedding)
        for di, det in enumerate(detections):
            if di not in used_d:
                active.append((Track(-1, [det]), det.embedding.astype(np.float64).copy()))
    tracks = closed + [t for t, _ in active]
    tracks.sort(key=lambda t: (t.start, t.detections[0].face.box[0]))
    for i, t in enumerate(tracks):
        t.index = i
    return tracks


# -- aggregation -----------------------------------------------------------------------
def aggregate(embeddings: np.ndarray, qualities: np.ndarray | None = None,
              method: str = "quality", k: int = 3) -> np.ndarray:
    """(n_descriptors, d) unit descriptors of one track's (n, d) frame embeddings."""
    if method == "raw_mean":  # features that are not unit vectors (the L2 baseline)
        return np.asarray(embeddings, dtype=np.float32).mean(axis=0, keepdims=True)
    emb = l2_normalize(np.asarray(embeddings, dtype=np.float32))
    q = np.ones(len(emb)) if qualities is None else np.asarray(qualities, dtype=np.float64)
    weights = np.maximum(q, 1e-6)
    if method == "mean":
        return l2_normalize(emb.mean(axis=0, keepdims=True))
    if method == "quality":
        return _consistent_mean(emb, weights)
    if method == "single":
        return emb[[int(np.argmax(q))]]
    if method == "prototypes":
        return _prototypes(emb, weights, k)
    raise ValueError(f"unknown aggregation {method!r}; choose from {METHODS}")


def _consistent_mean(emb: np.ndarray, weights: np.ndarray, rounds: int = 3,
                     margin: float = 0.1, softness: float = 0.05) -> np.ndarray:
    """Quality-weighted mean, then frames far below the median agreement with it (by more
    than `margin` in cosine) are faded out by a logistic weight, and the mean redone."""
    center = l2_normalize((weights[:, None] * emb).sum(axis=0, keepdims=True))[0]
    for _ in range(rounds):
        agreement = emb @ center
        keep = 1.0 / (1.0 + np.exp(-(agreement - np.median(agreement) + margin) / softness))
        center = l2_normalize(((weights * keep)[:, None] * emb).sum(axis=0, keepdims=True))[0]
    return center[None].astype(np.float32)


def _prototypes(emb: np.ndarray, weights: np.ndarray, k: int, iters: int = 10) -> np.ndarray:
    """Weighted spherical k-means, seeded by the best frame then farthest points."""
    k = max(1, min(k, len(emb)))
    centers = [emb[int(np.argmax(weights))]]
    while len(centers) < k:
        sims = emb @ np.stack(centers).T
        centers.append(emb[int(np.argmin(sims.max(axis=1)))])
    c = np.stack(centers)
    for _ in range(iters):
        assign = np.argmax(emb @ c.T, axis=1)
        c = np.stack([
            (weights[assign == j, None] * emb[assign == j]).sum(0) if np.any(assign == j)
            else c[j] for j in range(k)])
        c = l2_normalize(c)
    return c.astype(np.float32)


def set_similarity(a: np.ndarray, b: np.ndarray, mode: str = "max") -> float:
    """Similarity of two descriptor sets: best pair ('max') or mean of all ('mean')."""
    sims = np.asarray(a, np.float32) @ np.asarray(b, np.float32).T
    return float(sims.max() if mode == "max" else sims.mean())
