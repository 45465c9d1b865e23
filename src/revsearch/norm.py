"""Score normalisation against a cohort: adaptive symmetric normalisation (AS-norm).

A face that resembles many people scores high with everyone, including strangers. AS-norm
judges a score by how the two faces score with a cohort of other faces: for each side, the
mean and spread of its `top_k` highest cohort cosines, and

    score = ((s - mean_q) / std_q + (s - mean_g) / std_g) / 2

so a pair is scored in standard deviations above what each face gets from its closest
strangers. The cohort is a sample of the collection's own faces (`Cohort.sample`, taken
once per open index); a face that is itself in the cohort is left out of its own
statistics, and so are cohort faces it matches at the loosest calibrated cosine threshold
(`exclude_above`): a collection holds the query's own other photos, and counting them as
"strangers" would push down exactly the people it knows best. The threshold on this
score comes from the space's calibration, fitted with the same method and parameters
(`revsearch calibrate`).

The `norm` setting turns it on; `docs/results/norm_*.md` measures whether it helps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

NORMS = ("none", "asnorm")

# A cohort face this close to the face being normalised is that face itself (or a copy).
SELF = 0.9999


@dataclass(frozen=True)
class NormParams:
    """The method and its parameters, as fitted on development data and stored with the
    calibration; the defaults are what `revsearch calibrate` fits with."""

    method: str = "asnorm"
    top_k: int = 100
    cohort: int = 2000  # faces sampled from the collection
    seed: int = 0
    # Cohort faces at or above this cosine with the face are taken for the same person
    # and left out of its statistics (None: keep them).
    exclude_above: float | None = None

    @classmethod
    def from_dict(cls, data: dict) -> NormParams:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Cohort:
    """Unit vectors of faces of (mostly) other people, and the top-k statistics."""

    vectors: np.ndarray  # (n, d) float32
    top_k: int
    exclude_above: float | None = None

    @classmethod
    def sample(cls, rows: Iterable[np.ndarray], params: NormParams) -> Cohort:
        """A uniform sample of `params.cohort` vectors from `rows` (reservoir sampling: one
        pass, any length)."""
        rng = np.random.default_rng(params.seed)
        kept: list[np.ndarray] = []
        for n, row in enumerate(rows):
            if n < params.cohort:
                kept.append(np.asarray(row, np.float32))
            else:
                j = int(rng.integers(n + 1))
                if j < params.cohort:
                    kept[j] = np.asarray(row, np.float32)
        dim = len(kept[0]) if kept else 0
        return cls(np.stack(kept) if kept else np.zeros((0, dim), np.float32), params.top_k,
                   params.exclude_above)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def usable(self) -> bool:
        """Enough faces for the statistics to mean something (twice the top k)."""
        return len(self.vectors) >= 2 * self.top_k

    def stats(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) of each row's `top_k` highest cohort cosines, itself (and, with
        `exclude_above`, whoever it matches) left out."""
        x = np.atleast_2d(np.asarray(x, np.float32))
        sims = x @ self.vectors.T
        limit = SELF if self.exclude_above is None else min(SELF, self.exclude_above)
        sims[sims >= limit] = -np.inf
        k = min(self.top_k, sims.shape[1] - 1)
        top = -np.partition(-sims, k - 1, axis=1)[:, :k]
        top = np.where(np.isfinite(top), top, np.nan)
        empty = np.isnan(top).all(axis=1)
        top[empty] = 0.0  # no stranger left at all: a neutral centre, flagged by std
        with np.errstate(invalid="ignore"):
            mean, std = np.nanmean(top, axis=1), np.nanstd(top, axis=1)
        std[empty] = 1.0
        return mean, np.maximum(std, 1e-6)


def asnorm(raw: np.ndarray, query: tuple[np.ndarray, np.ndarray],
           gallery: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """AS-norm of raw cosines (queries x gallery) from each side's cohort statistics."""
    raw = np.asarray(raw, np.float64)
    mq, sq = (np.asarray(a, np.float64)[:, None] for a in query)
    mg, sg = (np.asarray(a, np.float64)[None, :] for a in gallery)
    return 0.5 * ((raw - mq) / sq + (raw - mg) / sg)
