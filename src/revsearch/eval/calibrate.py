"""Match / no-match threshold calibration on LFW's development split.

The threshold is the cosine similarity at which a stated false-accept rate (FAR) is
reached on *impostor* pairs: every pair of different people among the images of
`pairsDevTrain.txt` (millions of pairs, so a FAR of 1e-3 or 1e-4 is estimated from
thousands of errors, not from one or two of the file's 1,100 listed negatives).
`pairsDevTest.txt` then checks it on held-out people. The result is written as JSON
beside the model (`revsearch/spaces/calibration/<key>.json`, see
`revsearch.spaces.calibration`) and read at search time.

A threshold answers a verification question ("same person?") for one comparison.
Searching a gallery of N other people compares the query with all of them, so expect
about FAR x N false matches per query: choose the FAR with the gallery size in mind.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from revsearch.config import Settings
from revsearch.eval.datasets import Pair, lfw_image, read_pairs
from revsearch.faces.models import sha256_file
from revsearch.faces.pipeline import Pipeline, central_face
from revsearch.media import load_image
from revsearch.spaces.calibration import Calibration

log = logging.getLogger(__name__)

DEFAULT_TARGET_FAR = 1e-3


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """The smallest threshold t with (impostor scores >= t) / n <= far."""
    scores = np.sort(np.asarray(impostor, dtype=np.float64))[::-1]
    if len(scores) == 0:
        raise ValueError("no impostor scores")
    allowed = int(np.floor(far * len(scores)))
    if allowed >= len(scores):
        return float(scores[-1])
    # Accepting >= t admits exactly `allowed` scores when t sits just above the next one.
    return float(np.nextafter(scores[allowed], np.inf))


def rates(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> dict:
    # float64: numpy would cast the threshold down to float32 scores and round it away.
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    return {
        "tar": float((genuine >= threshold).mean()) if len(genuine) else float("nan"),
        "far": float((impostor >= threshold).mean()) if len(impostor) else float("nan"),
        "n_genuine": len(genuine),
        "n_impostor": len(impostor),
    }


def _embed_images(pipeline: Pipeline, paths: list[Path]) -> dict[Path, np.ndarray]:
    vectors = {}
    for path in paths:
        image = load_image(path)
        faces = pipeline.detect(image)
        idx = central_face(faces, image.shape)
        if idx is None:
            continue
        vectors[path] = pipeline.embedder.embed(image, [faces[idx]])[0]
    return vectors


def pair_scores(pipeline: Pipeline, lfw_root: Path, pairs: list[Pair]) -> dict:
    """Genuine scores of the listed same pairs, impostor scores of all cross-identity pairs
    of the listed images, and how many images had no face (their pairs are dropped)."""
    images = lfw_root / "lfw-deepfunneled"
    paths = sorted({lfw_image(images, p.name1, p.num1) for p in pairs}
                   | {lfw_image(images, p.name2, p.num2) for p in pairs})
    vectors = _embed_images(pipeline, paths)
    genuine = [float(vectors[a] @ vectors[b]) for p in pairs if p.same
               for a, b in [(lfw_image(images, p.name1, p.num1),
                             lfw_image(images, p.name2, p.num2))]
               if a in vectors and b in vectors]
    kept = sorted(vectors)
    matrix = np.stack([vectors[p] for p in kept])
    names = np.array([p.parent.name for p in kept])
    sims = matrix @ matrix.T
    upper = np.triu(np.ones_like(sims, dtype=bool), k=1)
    impostor = sims[upper & (names[:, None] != names[None, :])]
    return {"genuine": np.array(genuine), "impostor": impostor,
            "images": len(paths), "no_face": len(paths) - len(vectors)}


def calibrate(settings: Settings, lfw_root: Path, target_far: float = DEFAULT_TARGET_FAR,
              command: str = "") -> Calibration:
    """Fit the threshold on pairsDevTrain at `target_far`; report it on pairsDevTest."""
    pipeline = Pipeline(settings, threads=max(1, settings.workers))
    train = pair_scores(pipeline, lfw_root, read_pairs(lfw_root / "pairsDevTrain.txt")[0])
    threshold = threshold_at_far(train["impostor"], target_far)
    test = pair_scores(pipeline, lfw_root, read_pairs(lfw_root / "pairsDevTest.txt")[0])
    sha = pipeline.space.digest or sha256_file(Path(settings.model_path))

    def summary(scores: dict) -> dict:
        return {**rates(scores["genuine"], scores["impostor"], threshold),
                "images": scores["images"], "no_face": scores["no_face"]}

    return Calibration(
        key=pipeline.key, threshold=threshold, target_far=target_far,
        model_sha256=sha, detector=pipeline.space.detector_name(settings), train=summary(train),
        test=summary(test), command=command, created=time.strftime("%Y-%m-%d"),
    )
