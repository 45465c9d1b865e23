"""Clustering methods over the k-NN graph, each behind one signature:

    method(graph: KnnGraph, threshold: float, **params) -> labels (one int per item)

`threshold` is always a similarity (cosine): an edge below it is not a link. Items that
join nobody get a cluster of their own. `revsearch eval people` compares the methods on
the same graph (docs/results/people_lfw.md); `DEFAULT_METHOD` is the one that won there.

- `components`: connected components of the thresholded graph (single linkage);
- `chinese_whispers`: dlib's label propagation on the thresholded, weighted graph;
- `dbscan`: DBSCAN with eps = 1 - threshold in cosine distance, as Immich runs it
  (min_samples counts the face itself); noise items stay alone;
- `rank_order`: approximate rank-order clustering (Otto et al. 2018): link two items
  when each is high in the other's neighbour list and their lists overlap;
- `centroid`: agglomerative clustering with centroid linkage, restricted to pairs of
  clusters joined by a graph edge: merges the most similar pair of cluster means while
  that similarity is at or above the threshold. A mean describes a person better than
  any single face, so one blurred face cannot chain two people together the way single
  linkage lets it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from revsearch.people.graph import KnnGraph

Labels = np.ndarray


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[..., Labels]
    about: str
    params: dict = field(default_factory=dict)  # defaults of its extra parameters
    needs_vectors: bool = False


# -- helpers ----------------------------------------------------------------------------
class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def labels(self) -> Labels:
        return relabel(np.array([self.find(i) for i in range(len(self.parent))]))


def relabel(labels: np.ndarray) -> Labels:
    """Clusters numbered 0.. in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.int64)


def _components(n: int, a: np.ndarray, b: np.ndarray) -> Labels:
    uf = UnionFind(n)
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        uf.union(x, y)
    return uf.labels()


# -- methods ----------------------------------------------------------------------------
def components(graph: KnnGraph, threshold: float) -> Labels:
    a, b, _ = graph.edges(threshold)
    return _components(len(graph), a, b)


def chinese_whispers(graph: KnnGraph, threshold: float, iterations: int = 20,
                     seed: int = 0) -> Labels:
    n = len(graph)
    a, b, s = graph.edges(threshold)
    adjacency: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for x, y, w in zip(a.tolist(), b.tolist(), s.tolist(), strict=True):
        adjacency[x].append((y, w))
        adjacency[y].append((x, w))
    labels = list(range(n))
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = 0
        for i in rng.permutation(n).tolist():
            if not adjacency[i]:
                continue
            votes: dict[int, float] = {}
            for j, w in adjacency[i]:
                votes[labels[j]] = votes.get(labels[j], 0.0) + w
            best = max(votes.items(), key=lambda p: (p[1], -p[0]))[0]
            if best != labels[i]:
                labels[i] = best
                changed += 1
        if not changed:
            break
    return relabel(np.array(labels))


def dbscan(graph: KnnGraph, threshold: float, min_samples: int = 3) -> Labels:
    """DBSCAN on the graph: an item is core when it has at least `min_samples` items
    (itself included) within the radius; the graph's k bounds only how many
    neighbours are seen, never whether an item is core (k >= min_samples)."""
    n = len(graph)
    within = (graph.neighbours >= 0) & (graph.sims >= threshold)
    core = within.sum(1) + 1 >= min_samples
    a, b, _ = graph.edges(threshold)
    both = core[a] & core[b]
    labels = _components(n, a[both], b[both])
    # A border item joins the cluster of its most similar core neighbour.
    for i in np.flatnonzero(~core).tolist():
        row = graph.neighbours[i][within[i]]
        cores = row[core[row]]
        if len(cores):
            labels[i] = labels[cores[0]]  # best first
    return relabel(labels)


def rank_order(graph: KnnGraph, threshold: float, rank: float = 2.0) -> Labels:
    """Approximate rank-order distance (Otto et al., "Clustering Millions of Faces by
    Identity", 2018) on the k-NN lists; linked when below `rank` and similarity is at or
    above `threshold`, then transitively merged."""
    n, k = graph.neighbours.shape
    lists = [set(row[row >= 0].tolist()) for row in graph.neighbours]
    position = [{j: p for p, j in enumerate(row.tolist()) if j >= 0}
                for row in graph.neighbours]

    def asymmetric(i: int, j: int) -> int:
        # i's neighbours ranked before j that are absent from j's list
        order = position[i].get(j, k)
        return sum(1 for x in graph.neighbours[i][:order].tolist()
                   if x >= 0 and x not in lists[j] and x != j)

    a, b, _ = graph.edges(threshold)
    keep = []
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        o = min(position[x].get(y, k), position[y].get(x, k)) + 1
        if (asymmetric(x, y) + asymmetric(y, x)) / o < rank:
            keep.append((x, y))
    if not keep:
        return np.arange(n)
    pairs = np.array(keep)
    return _components(n, pairs[:, 0], pairs[:, 1])


def centroid(graph: KnnGraph, threshold: float, vectors: np.ndarray | None = None) -> Labels:
    """Centroid-linkage agglomeration along the graph's edges (see module docstring)."""
    if vectors is None:
        raise ValueError("centroid clustering needs the vectors")
    n = len(graph)
    # Candidate pairs: every graph edge; a floor keeps the heap small, since clusters
    # whose closest members are far apart will not have close means either.
    a, b, _ = graph.edges(threshold - 0.15)
    sums = np.asarray(vectors, np.float64).copy()
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        neighbours[x].add(y)
        neighbours[y].add(x)
    alive = np.ones(n, bool)
    version = np.zeros(n, np.int64)
    uf = UnionFind(n)

    def unit(c: int) -> np.ndarray:
        v = sums[c]
        return v / max(np.linalg.norm(v), 1e-12)

    heap: list[tuple[float, int, int, int, int]] = []

    def push(c: int, others: list[int]) -> None:
        if not others:
            return
        u = unit(c)
        mat = sums[others]
        sims = mat @ u / np.maximum(np.linalg.norm(mat, axis=1), 1e-12)
        for o, sim in zip(others, sims.tolist(), strict=True):
            if sim >= threshold:
                x, y = (c, o) if c < o else (o, c)
                heapq.heappush(heap, (-sim, x, y, int(version[x]), int(version[y])))

    for c in range(n):
        push(c, [o for o in neighbours[c] if o > c])
    while heap:
        _, x, y, vx, vy = heapq.heappop(heap)
        if not (alive[x] and alive[y]) or version[x] != vx or version[y] != vy:
            continue
        # merge y into x
        uf.parent[y] = x
        sums[x] += sums[y]
        alive[y] = False
        neighbours[x] |= neighbours[y]
        neighbours[x].discard(x)
        neighbours[x].discard(y)
        neighbours[y] = set()
        version[x] += 1
        for o in list(neighbours[x]):
            neighbours[o].discard(y)
            neighbours[o].add(x)
        push(x, [o for o in neighbours[x] if alive[o]])
    return uf.labels()


METHODS: dict[str, Method] = {
    m.name: m for m in (
        Method("components", components, "connected components (single linkage)"),
        Method("chinese_whispers", chinese_whispers, "Chinese whispers, as dlib",
               {"iterations": 20}),
        Method("dbscan", dbscan, "DBSCAN, min_samples 3 as Immich", {"min_samples": 3}),
        Method("rank_order", rank_order, "approximate rank-order", {"rank": 2.0}),
        Method("centroid", centroid, "centroid linkage along graph edges",
               needs_vectors=True),
    )
}


def run(method: str, graph: KnnGraph, threshold: float, vectors: np.ndarray | None = None,
        **params: object) -> Labels:
    """Cluster with `method` (a name in METHODS)."""
    found = METHODS.get(method)
    if found is None:
        raise ValueError(f"unknown clustering method {method!r}; choose from "
                         f"{', '.join(METHODS)}")
    kwargs = {**found.params, **params}
    if found.needs_vectors:
        kwargs["vectors"] = vectors
    return found.run(graph, threshold, **kwargs)


def apply_links(labels: Labels, must: Sequence[tuple[int, int]],
                cannot: Sequence[tuple[int, int]]) -> Labels:
    """User feedback on top of any method: each must-link joins its two clusters; then
    each cannot-link (a, b) that ended in one cluster moves `a` out, alone."""
    labels = np.asarray(labels).copy()
    if must:
        uf = UnionFind(int(labels.max()) + 1 if len(labels) else 0)
        for x, y in must:
            uf.union(int(labels[x]), int(labels[y]))
        labels = np.array([uf.find(int(c)) for c in labels], np.int64)
    fresh = int(labels.max()) + 1 if len(labels) else 0
    for x, y in cannot:
        if labels[x] == labels[y]:
            labels[x] = fresh
            fresh += 1
    return relabel(labels)
