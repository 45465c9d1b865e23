"""Search: the query's faces, the person of interest, k-NN over faces, one hit per image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detect import Face
from .errors import NoFaceError
from .pipeline import Pipeline, largest_face
from .store import FaceCollection


@dataclass
class QueryFace:
    """A face found in the query; `index` is its left-to-right position."""

    index: int
    box: list[float]
    landmarks: list[float]
    score: float
    default: bool  # the largest face: the person of interest unless told otherwise


@dataclass
class Hit:
    rank: int
    path: str
    image_id: str
    face_id: str
    face_index: int
    box: list[float]
    similarity: float
    match: bool | None  # None when no threshold is known for this model
    label: str


@dataclass
class SearchResult:
    query: str
    face: QueryFace
    threshold: float | None
    hits: list[Hit]


def describe_faces(faces: list[Face]) -> list[QueryFace]:
    default = largest_face(faces)
    return [QueryFace(i, [round(float(v), 1) for v in f.box],
                      [round(float(v), 1) for v in f.landmarks.reshape(-1)],
                      round(f.score, 4), i == default) for i, f in enumerate(faces)]


def select_faces(faces: list[Face], face: int | None = None, all_faces: bool = False,
                 query_name: str = "query") -> list[int]:
    """Indices of the faces to search for: the largest, the one asked for, or all."""
    if not faces:
        raise NoFaceError(f"no face found in {query_name}; try a larger or sharper photo "
                          f"where the face is at least ~20 pixels wide")
    if all_faces:
        return list(range(len(faces)))
    if face is None:
        return [largest_face(faces)]  # type: ignore[list-item]
    if not 0 <= face < len(faces):
        raise NoFaceError(f"{query_name} has {len(faces)} face(s), numbered 0 to "
                          f"{len(faces) - 1} from left to right; there is no face {face}")
    return [face]


def search_faces(collection: FaceCollection, pipeline: Pipeline, image: np.ndarray, *,
                 k: int = 10, face: int | None = None, all_faces: bool = False,
                 exclude_hash: str = "", threshold: float | None = None,
                 query_name: str = "query") -> list[SearchResult]:
    """Search the collection for the chosen face(s) of a BGR image."""
    if k < 1:
        raise ValueError("k must be at least 1")
    faces = pipeline.detect(image)
    chosen = select_faces(faces, face, all_faces, query_name)
    described = describe_faces(faces)
    vectors = pipeline.embedder.embed(image, [faces[i] for i in chosen])
    hit_lists = collection.search(vectors, k, exclude_hash=exclude_hash)
    results = []
    for i, hits in zip(chosen, hit_lists, strict=True):
        ranked = [
            Hit(rank=r, path=h.path, image_id=h.image_id, face_id=h.face_id,
                face_index=h.face_index, box=h.box, similarity=round(h.similarity, 5),
                match=None if threshold is None else h.similarity >= threshold,
                label=h.label)
            for r, h in enumerate(sorted(hits, key=lambda h: -h.similarity), start=1)
        ]
        results.append(SearchResult(query_name, described[i], threshold, ranked))
    return results
