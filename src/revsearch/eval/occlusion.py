"""Synthetic partial occlusions for robustness experiments.

Each occluder paints over part of a face, placed from its detected box and 5 landmarks:

- `sunglasses`: a dark band over both eyes (about a quarter of the face's height).
- `mask`: a light surgical-mask shape over the lower face, from just under the nose to
  below the chin.
- `patch`: a grey rectangle covering 20-40% of the face box at a random place.

The images are only altered in memory; nothing here touches a user's files.
"""

from __future__ import annotations

import numpy as np

from revsearch.faces.detect import Face

KINDS = ("sunglasses", "mask", "patch")


def occlude(image: np.ndarray, face: Face, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of `image` with `face` partly covered by occluder `kind`."""
    out = image.copy()
    x, y, w, h = face.box
    lm = face.landmarks
    if kind == "sunglasses":
        eye_y = float((lm[0, 1] + lm[1, 1]) / 2)
        inter = float(abs(lm[1, 0] - lm[0, 0]))
        x0, x1 = min(lm[0, 0], lm[1, 0]) - 0.45 * inter, max(lm[0, 0], lm[1, 0]) + 0.45 * inter
        _fill(out, x0, eye_y - 0.13 * h, x1, eye_y + 0.13 * h, (20, 20, 20))
    elif kind == "mask":
        nose_y = float(lm[2, 1])
        mouth_y = float((lm[3, 1] + lm[4, 1]) / 2)
        top = nose_y + 0.25 * (mouth_y - nose_y)
        _fill(out, x + 0.02 * w, top, x + 0.98 * w, y + 1.05 * h, (225, 225, 230))
    elif kind == "patch":
        fraction = rng.uniform(0.2, 0.4)
        aspect = rng.uniform(0.6, 1.6)
        pw = min(w, np.sqrt(fraction * w * h * aspect))
        ph = min(h, fraction * w * h / pw)
        px, py = x + rng.uniform(0, w - pw), y + rng.uniform(0, h - ph)
        _fill(out, px, py, px + pw, py + ph, (128, 128, 128))
    else:
        raise ValueError(f"unknown occluder {kind!r}; choose from {KINDS}")
    return out


def _fill(image: np.ndarray, x0: float, y0: float, x1: float, y1: float,
          color: tuple[int, int, int]) -> None:
    height, width = image.shape[:2]
    c0, c1 = int(np.clip(round(x0), 0, width)), int(np.clip(round(x1), 0, width))
    r0, r1 = int(np.clip(round(y0), 0, height)), int(np.clip(round(y1), 0, height))
    image[r0:r1, c0:c1] = color
