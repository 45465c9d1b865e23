"""Retrieval and verification metrics, as plain array-in, number-out functions.

Retrieval: a query's gallery is ranked by score (higher first); an item is relevant when
it carries the query's identity. Verification: pairs with a score and a same/different
truth, thresholded.
"""

from __future__ import annotations

import numpy as np


def similarity(queries: np.ndarray, vectors: np.ndarray, metric: str = "COSINE") -> np.ndarray:
    """(q, n) scores, higher is better: cosine (dot product of unit vectors), or minus the
    Euclidean distance for "L2"."""
    if metric == "L2":
        sq = ((queries**2).sum(1)[:, None] + (vectors**2).sum(1)[None, :]
              - 2.0 * queries @ vectors.T)
        return -np.sqrt(np.maximum(sq, 0.0))
    return queries @ vectors.T


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str = "COSINE",
              chunk: int = 100) -> np.ndarray:
    """Indices of each query's k best vectors, best first, by exhaustive search."""
    tops = []
    for start in range(0, len(queries), chunk):
        s = similarity(queries[start:start + chunk], vectors, metric)
        part = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
        tops.append(np.take_along_axis(part, order, 1))
    return np.concatenate(tops)


def ranks_of_relevant(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based ranks of the relevant items when `scores` is sorted descending (stable)."""
    order = np.argsort(-scores, kind="stable")
    return np.flatnonzero(relevant[order]) + 1


def average_precision(ranks: np.ndarray) -> float:
    """AP from the sorted 1-based ranks of all relevant items: mean of precision@rank_i."""
    if len(ranks) == 0:
        return float("nan")
    ranks = np.sort(ranks)
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def precision_at(ranks: np.ndarray, k: int) -> float:
    return float(np.sum(ranks <= k) / k)


def cmc(first_ranks: np.ndarray, max_rank: int = 100) -> np.ndarray:
    """Cumulative match characteristic: fraction of queries whose first hit is <= r,
    for r = 1..max_rank."""
    first = np.asarray(first_ranks)
    return np.array([(first <= r).mean() for r in range(1, max_rank + 1)])


def roc(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(FAR, TAR, thresholds) for every distinct threshold, strictest first."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # end of each tie group
    tar = np.cumsum(y)[last] / max(y.sum(), 1)
    far = np.cumsum(~y)[last] / max((~y).sum(), 1)
    return np.r_[0.0, far], np.r_[0.0, tar], np.r_[np.inf, s[last]]


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a same pair > score of a different pair),
    ties counting one half (Mann-Whitney U)."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    pos, neg = scores[same], scores[~same]
    all_scores = np.concatenate([pos, neg])
    order = np.argsort(all_scores, kind="stable")
    ranks = np.empty(len(all_scores))
    sorted_scores = all_scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising accuracy of `score >= t` (midpoint between neighbours)."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    s = np.unique(scores)
    candidates = np.r_[s[0] - 1e-6, (s[:-1] + s[1:]) / 2.0, s[-1] + 1e-6]
    accept = scores[None, :] >= candidates[:, None]
    accuracy = (accept == same[None, :]).mean(axis=1)
    return float(candidates[int(np.argmax(accuracy))])


def ten_fold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """LFW protocol: per fold, the threshold fitted on the other folds, accuracy on it."""
    scores, same, folds = np.asarray(scores), np.asarray(same, bool), np.asarray(folds)
    accs, thresholds = [], []
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        t = best_threshold(scores[train], same[train])
        thresholds.append(t)
        accs.append(float(((scores[test] >= t) == same[test]).mean()))
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "folds": accs,
            "thresholds": thresholds}


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> dict:
    from revsearch.eval.calibrate import rates, threshold_at_far

    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    t = threshold_at_far(scores[~same], far)
    return {"threshold": t, **rates(scores[same], scores[~same], t)}


def _contingency(clusters: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, ...]:
    """Counts per (cluster, true class) cell, per cluster and per class."""
    _, c = np.unique(np.asarray(clusters), return_inverse=True)
    _, t = np.unique(np.asarray(truth), return_inverse=True)
    _, cell = np.unique(c * (t.max() + 1) + t, return_inverse=True)
    n_cell = np.bincount(cell)
    return n_cell, np.bincount(c), np.bincount(t), c, t, cell


def clustering_scores(clusters: np.ndarray, truth: np.ndarray) -> dict:
    """BCubed and pairwise precision, recall and F1 of a clustering against the true
    identities, and the numbers of clusters and classes.

    BCubed averages over items: precision is the share of an item's cluster that has its
    identity, recall the share of its identity in its cluster. Pairwise counts pairs of
    items put together (precision) among pairs that should be (recall), so large
    identities weigh quadratically.
    """
    n_cell, n_c, n_t, c, t, cell = _contingency(clusters, truth)
    n = len(c)
    per_item = n_cell[cell]
    bp = float(np.mean(per_item / n_c[c]))
    br = float(np.mean(per_item / n_t[t]))
    pairs = lambda x: (x * (x - 1) / 2.0).sum()  # noqa: E731
    tp, pp, tt = pairs(n_cell), pairs(n_c), pairs(n_t)
    pp_, pr_ = (tp / pp if pp else 1.0), (tp / tt if tt else 1.0)
    return {"items": n, "clusters": len(n_c), "classes": len(n_t),
            "bcubed_precision": bp, "bcubed_recall": br, "bcubed_f": _f(bp, br),
            "pairwise_precision": float(pp_), "pairwise_recall": float(pr_),
            "pairwise_f": _f(pp_, pr_)}


def _f(p: float, r: float) -> float:
    return float(2 * p * r / (p + r)) if p + r else 0.0


def binomial_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a rate of `k` events in `n` trials.

    Treats the trials as independent: impostor pairs that share images are not, so read
    it as a lower bound on the uncertainty."""
    if n <= 0:
        return (0.0, 1.0)
    alpha = (1.0 - confidence) / 2
    lower = 0.0 if k == 0 else _solve_p(lambda p: 1.0 - _binom_cdf(k - 1, n, p), alpha)
    upper = 1.0 if k >= n else _solve_p(lambda p: _binom_cdf(k, n, p), alpha, falling=True)
    return (lower, upper)


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n in the millions)."""
    import math

    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    i = np.arange(k + 1, dtype=np.float64)
    lgamma = np.vectorize(math.lgamma)
    log_terms = (math.lgamma(n + 1) - lgamma(i + 1) - lgamma(n - i + 1)
                 + i * math.log(p) + (n - i) * math.log1p(-p))
    top = log_terms.max()
    return float(min(1.0, math.exp(top) * np.exp(log_terms - top).sum()))


def _solve_p(f, target: float, falling: bool = False, iters: int = 80) -> float:
    """The p in (0, 1) where the monotone f(p) equals `target` (bisection on log p)."""
    lo, hi = -40.0, 0.0  # log10 p
    for _ in range(iters):
        mid = (lo + hi) / 2
        value = f(10.0 ** mid)
        if (value > target) != falling:
            hi = mid
        else:
            lo = mid
    return 10.0 ** ((lo + hi) / 2)


def bootstrap_ci(values: np.ndarray | list[float], confidence: float = 0.95,
                 resamples: int = 2000, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of the mean of per-query `values` (resampling the
    queries), e.g. rank-1 hits (0/1) or average precisions."""
    a = np.asarray(values, dtype=np.float64)
    if len(a) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 200):  # bounded memory for large query sets
        n = min(200, resamples - start)
        means[start:start + n] = a[rng.integers(0, len(a), size=(n, len(a)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]
