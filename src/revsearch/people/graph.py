"""The k-nearest-neighbour graph of a space's faces and face tracks, from the vector index.

Every face (and every video face track) is one item. Its neighbours come from Milvus,
many query vectors per request, so no all-pairs matrix is ever held and the same code
runs on a Milvus server. A track is described by the mean of its stored descriptors
(its id: `<video_id>_<track:04d>`); a neighbour found among track descriptor rows
counts for its track.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from revsearch.store import SpaceCollections

log = logging.getLogger(__name__)


@dataclass
class Items:
    """What is clustered: faces and tracks, in one order."""

    ids: list[str]
    media: list[str]  # the photo or video id of each
    kinds: list[str]  # "face" or "track"
    labels: list[str]  # the folder label stored with it ("" when none)
    vectors: np.ndarray  # (n, dim) float32

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: Sequence[int]) -> Items:
        rows = list(rows)
        return Items([self.ids[i] for i in rows], [self.media[i] for i in rows],
                     [self.kinds[i] for i in rows], [self.labels[i] for i in rows],
                     self.vectors[rows])


@dataclass
class KnnGraph:
    """Each item's k nearest other items: `neighbours[i]` indexes items (-1: none),
    `sims[i]` their similarities, best first."""

    neighbours: np.ndarray  # (n, k) int64
    sims: np.ndarray  # (n, k) float32

    def __len__(self) -> int:
        return len(self.neighbours)

    def edges(self, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The undirected edges at or above `threshold`, each once: (a, b, sim), a < b."""
        n, k = self.neighbours.shape
        a = np.repeat(np.arange(n), k)
        b = self.neighbours.reshape(-1)
        s = self.sims.reshape(-1)
        keep = (b >= 0) & (s >= threshold) & (a != b)
        a, b, s = a[keep], b[keep], s[keep]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        key = lo * n + hi
        _, first = np.unique(key, return_index=True)
        return lo[first], hi[first], s[first]


def track_key(row_id: str) -> str:
    """The track a descriptor row belongs to (`<video>_<track>_<proto>` -> `<video>_<track>`)."""
    return row_id.rsplit("_", 1)[0]


def load_items(collection: SpaceCollections, only: set[str] | None = None) -> Items:
    """Every face and track of the space with its vector (`only`: just those ids)."""
    ids, media, kinds, labels, vectors = [], [], [], [], []
    for row in collection.all_faces(with_embeddings=True):
        if only is None or row["face_id"] in only:
            ids.append(row["face_id"])
            media.append(row["image_id"])
            kinds.append("face")
            labels.append(row["label"])
            vectors.append(np.asarray(row["embedding"], np.float32))
    tracks: dict[str, list] = {}
    for row in collection.all_tracks(with_embeddings=True):
        key = track_key(row["row_id"])
        if only is None or key in only:
            tracks.setdefault(key, []).append(row)
    for key, rows in sorted(tracks.items()):
        ids.append(key)
        media.append(rows[0]["video_id"])
        kinds.append("track")
        labels.append(next((r["label"] for r in rows if r["label"]), ""))
        vectors.append(_unit(np.mean([np.asarray(r["embedding"], np.float32) for r in rows], 0)))
    dim = collection.dim
    return Items(ids, media, kinds, labels,
                 np.stack(vectors) if vectors else np.zeros((0, dim), np.float32))


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def neighbour_lists(collection: SpaceCollections, vectors: np.ndarray, k: int,
                    exclude: Sequence[str] = ()) -> list[list[tuple[str, float]]]:
    """For each vector, its k nearest items (face ids, track keys) with similarities,
    best first; `exclude[i]` (the query's own id) is left out of row i."""
    if not len(vectors):
        return []
    found: list[dict[str, float]] = [{} for _ in range(len(vectors))]
    for kind in ("faces", "tracks"):
        if not collection.holds(kind):
            continue
        # +1: the query itself comes back first; a track's own descriptors all do.
        extra = 1 if kind == "faces" else 4
        for best, hits in zip(found, collection.neighbours(vectors, k + extra, kind),
                              strict=True):
            for row_id, sim in hits:
                item = row_id if kind == "faces" else track_key(row_id)
                if sim > best.get(item, -np.inf):
                    best[item] = sim
    out = []
    for i, best in enumerate(found):
        if i < len(exclude):
            best.pop(exclude[i], None)
        out.append(sorted(best.items(), key=lambda p: -p[1])[:k])
    return out


def build_graph(collection: SpaceCollections, items: Items, k: int = 30) -> KnnGraph:
    """The k-NN graph of `items`: searched in the space's collections on a Milvus
    server (its ANN index, many queries per request); on Milvus Lite, whose search is
    exact brute force anyway but pays a fixed cost per query vector, the same exact
    search is done here, blockwise on the vectors already read (same neighbours,
    a fraction of the time: docs/results/people_lfw.md)."""
    if collection.store.is_lite and collection.metric == "COSINE":
        return exact_graph(items.vectors, k)
    lists = neighbour_lists(collection, items.vectors, k, exclude=items.ids)
    return graph_from_lists(items.ids, lists, k)


def graph_from_lists(ids: Sequence[str], lists: Sequence[Sequence[tuple[str, float]]],
                     k: int) -> KnnGraph:
    position = {item: i for i, item in enumerate(ids)}
    neighbours = np.full((len(ids), k), -1, np.int64)
    sims = np.full((len(ids), k), -np.inf, np.float32)
    for i, hits in enumerate(lists):
        row = [(position[item], sim) for item, sim in hits if item in position][:k]
        if row:
            neighbours[i, :len(row)] = [j for j, _ in row]
            sims[i, :len(row)] = [s for _, s in row]
    return KnnGraph(neighbours, sims)


def exact_graph(vectors: np.ndarray, k: int = 30, chunk: int = 1024) -> KnnGraph:
    """The same graph by exact (brute-force) inner-product search in memory, blockwise:
    with faiss's flat index when it is installed (Milvus Lite depends on it), else
    numpy."""
    n = len(vectors)
    if n < 2:
        return KnnGraph(np.full((n, 1), -1, np.int64), np.full((n, 1), -np.inf, np.float32))
    k = max(1, min(k, n - 1))
    vectors = np.ascontiguousarray(vectors, np.float32)
    try:
        import faiss
    except ImportError:
        return _numpy_graph(vectors, k, chunk)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    sims, found = index.search(vectors, k + 1)
    # Drop each row's own entry (first, unless an exact duplicate tied with it).
    own = found == np.arange(n)[:, None]
    own[~own.any(1), -1] = True
    keep = ~own
    return KnnGraph(found[keep].reshape(n, k).astype(np.int64),
                    sims[keep].reshape(n, k).astype(np.float32))


def _numpy_graph(vectors: np.ndarray, k: int, chunk: int) -> KnnGraph:
    n = len(vectors)
    # Rows per block: the block's similarity matrix stays near 64 MB whatever n is.
    chunk = max(16, min(chunk, (1 << 24) // n))
    neighbours = np.empty((n, k), np.int64)
    sims = np.empty((n, k), np.float32)
    for start in range(0, n, chunk):
        s = vectors[start:start + chunk] @ vectors.T
        rows = np.arange(start, min(start + chunk, n))
        s[rows - start, rows] = -np.inf
        part = np.argpartition(s, n - k, axis=1)[:, n - k:]
        order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, 1)
        neighbours[rows] = top
        sims[rows] = np.take_along_axis(s, top, 1)
    return KnnGraph(neighbours, sims)
