"""k-NN over a space's faces (one hit per photo) or tracks (one hit per video)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from revsearch.store.backend import READ, Backend
from revsearch.store.schema import FACES, TRACKS, Table


@dataclass
class FaceHit:
    """A search hit: the best-matching face of one image, or track of one video (then
    `image_id` is the video's id, `face_index` the track's number and `extra` holds
    its `start`, `end` and thumbnail `frame`)."""

    face_id: str
    image_id: str
    path: str
    face_index: int
    box: list[float]
    similarity: float
    label: str
    extra: dict = field(default_factory=dict)
    media_type: str = "image"


def similarity_of(distance: float, metric: str) -> float:
    # Higher is better everywhere: cosine as is; L2 (Milvus gives it squared) negated.
    return distance if metric != "L2" else -float(np.sqrt(max(distance, 0.0)))


def _face_hit(h: dict, metric: str) -> FaceHit:
    e = h["entity"]
    return FaceHit(
        face_id=str(h.get("id", h.get("face_id"))), image_id=e["image_id"], path=e["path"],
        face_index=int(e["face_index"]), box=[float(v) for v in e["box"]],
        similarity=similarity_of(float(h["distance"]), metric), label=e.get("label", ""),
    )


def _track_hit(h: dict, metric: str) -> FaceHit:
    e = h["entity"]
    return FaceHit(
        face_id=str(h.get("id", h.get("row_id"))), image_id=e["video_id"], path=e["path"],
        face_index=int(e["track_index"]), box=[float(v) for v in e["box"]],
        similarity=similarity_of(float(h["distance"]), metric), label=e.get("label", ""),
        extra={"start": round(float(e["start"]), 3), "end": round(float(e["end"]), 3),
               "frame": int(e["frame"])},
        media_type="video",
    )


@dataclass(frozen=True)
class Kind:
    """What differs between searching faces (per image) and tracks (per video)."""

    table: Table
    fields: tuple[str, ...]  # what a hit needs
    hit: Callable[[dict, str], FaceHit]


FACE_SEARCH = Kind(FACES, ("image_id", "path", "face_index", "box", "label"), _face_hit)
TRACK_SEARCH = Kind(TRACKS, ("video_id", "path", "track_index", "box", "label", "start",
                             "end", "frame"), _track_hit)


@dataclass(frozen=True)
class Searcher:
    """k-NN over one collection of a space, on one backend."""

    client: Any
    backend: Backend
    collection: str
    kind: Kind
    metric: str = "COSINE"
    search_ef: int | None = None

    def search(self, vectors: np.ndarray, k: int, exclude_hash: str = "",
               grouped: bool = True) -> list[list[FaceHit]]:
        """For each query vector, the k best hits, best first; `grouped`: one per image
        (or video), its best face (or track); `exclude_hash`: leave out that file."""
        def run(queries: np.ndarray, limit: int, **kwargs: Any) -> list:
            return self._raw(queries, limit, exclude_hash, **kwargs)

        if grouped:
            found = self.backend.search_grouped(run, vectors, k, self.kind.table.group)
        else:
            found = run(vectors, k)
        return [[self.kind.hit(h, self.metric) for h in hits] for hits in found]

    def _raw(self, vectors: np.ndarray, limit: int, exclude_hash: str, **kwargs: Any) -> list:
        if exclude_hash:
            kwargs["filter"] = f'content_hash != "{exclude_hash}"'
        return self.client.search(
            self.collection, **READ,
            data=[np.asarray(v, dtype=np.float32).tolist() for v in vectors], limit=limit,
            search_params=self.backend.search_params(self.metric, self.search_ef, limit),
            output_fields=list(self.kind.fields), **kwargs,
        )
