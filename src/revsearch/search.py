"""Search: the query's faces (or a video's face tracks), the person of interest, k-NN
over faces and tracks, one hit per image or video.

`target` says where to look: "images" (faces in photos), "videos" (track descriptors)
or "all" (both, merged by similarity). A photo queries with a face's embedding, a video
with its track's descriptor(s); both live in the same space, so every pairing works.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from revsearch.errors import MediaError, NoFaceError
from revsearch.faces.align import align_face
from revsearch.faces.detect import Face
from revsearch.faces.occlusion import CROP, Occlusion, VisibleMatcher
from revsearch.faces.pipeline import Pipeline, largest_face, main_track
from revsearch.media import load_image
from revsearch.spaces.calibration import Decision
from revsearch.store import FaceHit, SpaceCollections
from revsearch.video.track import Track

log = logging.getLogger(__name__)

TARGETS = ("all", "images", "videos")


@dataclass
class QueryFace:
    """A face found in the query; `index` is its left-to-right position."""

    index: int
    box: list[float]
    landmarks: list[float]
    score: float
    default: bool  # the largest face: the person of interest unless told otherwise


@dataclass
class QueryTrack:
    """A face track found in a query video; `index` orders tracks by first appearance."""

    index: int
    start: float  # seconds
    end: float
    frames: int  # sampled frames the face was seen in
    frame: int  # its best frame, the thumbnail
    box: list[float]  # the face in that frame
    default: bool  # the most prominent track: the person of interest unless told otherwise


@dataclass
class Hit:
    """One result: an image (its best-matching face) or a video (its best track).

    For videos, `face_index` is the track's number, `box` the face in the thumbnail
    `frame`, and `start`/`end` the seconds where the person is seen.
    """

    rank: int
    path: str
    image_id: str
    face_id: str
    face_index: int
    box: list[float]
    similarity: float  # the raw cosine (the baseline: minus the L2 distance)
    match: bool | None  # None when no threshold is known for this model
    label: str
    media_type: str = "image"
    start: float | None = None
    end: float | None = None
    frame: int | None = None
    person_id: int | None = None  # the person its face belongs to (`revsearch people`)
    person: str = ""  # that person's name, if named
    score: float | None = None  # the normalised score, when the decision is made on it
    # A covered query's score on the visible part (what the head of the list is ranked
    # by; `match` still compares the cosine, calibrated on whole faces).
    visible: float | None = None
    # With person query expansion: the blend of the query face's and its person's
    # similarity that ranked the hit (revsearch.people.expand).
    expanded_score: float | None = None


NO_DECISION = Decision(None, None, note="no threshold given")


@dataclass
class SearchResult:
    query: str
    face: QueryFace
    threshold: float | None  # the decision's threshold (photo-to-photo)
    hits: list[Hit]
    track: QueryTrack | None = None  # set when the query is a video
    # The person the query's face is: the top hit's, when that hit is a match.
    person_id: int | None = None
    person: str = ""
    decision: Decision = NO_DECISION  # the operating point the matches were judged at
    # What covers the query face ("none", "eyes", "lower", "other"; photos only) and
    # whether the hits were re-ranked on the visible part (revsearch.faces.occlusion).
    occlusion: str = "none"
    occlusion_handled: bool = False
    # Person query expansion (revsearch.people.expand): the person whose faces queried
    # together with the query face; False when the face alone queried.
    expanded: bool = False
    expanded_person_id: int | None = None


# Person query expansion of one query face: (vector, k, target, exclude_hash) -> the
# expansion's person and its ranked photo hits, or None to keep the plain search.
Expander = Callable[[np.ndarray, int, str, str], tuple[int, list[FaceHit]] | None]

# Normalised scores of one query's hits: (query vectors, hits) -> one score per hit.
Scorer = Callable[[np.ndarray, list[FaceHit]], np.ndarray]


@dataclass
class Judge:
    """Decides the `match` of hits: the decision's threshold for the kind of comparison
    (photo, track, photo-to-track), on the cosine or on `scorer`'s normalised score."""

    decision: Decision = field(default=NO_DECISION)
    scorer: Scorer | None = None

    def judge(self, vectors: np.ndarray, hits: list[FaceHit], query_kind: str
              ) -> list[tuple[float | None, bool | None]]:
        """(normalised score or None, match) per hit."""
        if not hits:
            return []
        scores = (self.scorer(vectors, hits) if self.scorer is not None
                  else [None] * len(hits))
        out = []
        for hit, score in zip(hits, scores, strict=True):
            threshold = self.decision.threshold_for(comparison_kind(query_kind,
                                                                    hit.media_type))
            value = hit.similarity if score is None else float(score)
            out.append((None if score is None else round(float(score), 5),
                        None if threshold is None else value >= threshold))
        return out


def comparison_kind(query_kind: str, media_type: str) -> str:
    """"photo" (photo to photo), "track" (video to video) or "photo_track"."""
    if query_kind == "image" and media_type == "image":
        return "photo"
    return "track" if query_kind == media_type == "video" else "photo_track"


@dataclass
class Verification:
    """Whether two photos show the same person: one face of each, compared."""

    similarity: float  # cosine (the baseline: minus the L2 distance)
    threshold: float | None  # the calibrated one; None when unknown for this model
    match: bool | None  # score (or similarity) >= threshold; None without a threshold
    a: str  # the two queries' names
    b: str
    face_a: QueryFace  # the faces compared
    face_b: QueryFace
    decision: Decision = NO_DECISION  # the operating point the match was judged at
    score: float | None = None  # the normalised score, when the decision is made on it
    # With person query expansion: the blend of the query face's and its person's
    # similarity that ranked the hit (revsearch.people.expand).
    expanded_score: float | None = None


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


def describe_tracks(tracks: Sequence[Track]) -> list[QueryTrack]:
    default = main_track(list(tracks))
    return [QueryTrack(t.index, round(t.start, 3), round(t.end, 3), len(t.detections),
                       t.best.frame, [round(float(v), 1) for v in t.best.face.box],
                       t.index == default) for t in tracks]


def select_tracks(tracks: Sequence[Track], track: int | None = None, all_tracks: bool = False,
                  query_name: str = "query") -> list[int]:
    """Indices of the tracks to search for: the most prominent, the one asked for, or all."""
    if not tracks:
        raise NoFaceError(f"no face found in any sampled frame of {query_name}; try a "
                          f"higher --video-fps or a video where faces are larger")
    if all_tracks:
        return list(range(len(tracks)))
    if track is None:
        return [main_track(list(tracks))]  # type: ignore[list-item]
    if not 0 <= track < len(tracks):
        raise NoFaceError(f"{query_name} has {len(tracks)} face track(s), numbered 0 to "
                          f"{len(tracks) - 1} by first appearance; there is no track {track}")
    return [track]


def similarity(u: np.ndarray, v: np.ndarray, metric: str = "COSINE") -> float:
    """Higher is more alike, on the scale search hits use: cosine of unit vectors, or
    minus the L2 distance for the baseline's raw features."""
    if metric == "L2":
        return -float(np.linalg.norm(np.asarray(u, np.float64) - np.asarray(v, np.float64)))
    return float(np.dot(np.asarray(u, np.float64), np.asarray(v, np.float64)))


def search_vectors(collection: SpaceCollections, vectors: np.ndarray, k: int, *,
                   target: str = "all", exclude_hash: str = "", judge: Judge | None = None,
                   query_kind: str = "image") -> list[Hit]:
    """The k best images and/or videos for one person described by one or more vectors
    (a face, or a track's descriptors): each result scored by its best pair, ranked by
    the cosine and judged by `judge` (no decision without one)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {TARGETS}")
    found: list[FaceHit] = []
    if target in ("all", "images") and (target == "images" or collection.holds("faces")):
        found += [h for hits in collection.search(vectors, k, exclude_hash) for h in hits]
    if target == "videos" or (target == "all" and collection.holds("tracks")):
        found += [h for hits in collection.search_tracks(vectors, k, exclude_hash)
                  for h in hits]
    best: dict[str, FaceHit] = {}
    for h in found:
        if h.image_id not in best or h.similarity > best[h.image_id].similarity:
            best[h.image_id] = h
    ranked = sorted(best.values(), key=lambda h: -h.similarity)[:k]
    return judged_hits(ranked, vectors, judge, query_kind)


def judged_hits(ranked: list[FaceHit], vectors: np.ndarray, judge: Judge | None = None,
                query_kind: str = "image") -> list[Hit]:
    """Hits from ranked store hits, each judged on its `similarity` by `judge`."""
    judged = (judge or Judge()).judge(vectors, ranked, query_kind)
    out = []
    for r, (h, (score, match)) in enumerate(zip(ranked, judged, strict=True), start=1):
        expanded = h.extra.get("expanded_score")
        out.append(Hit(
            rank=r, path=h.path, image_id=h.image_id, face_id=h.face_id,
            face_index=h.face_index, box=h.box, similarity=round(h.similarity, 5),
            match=match, label=h.label, media_type=h.media_type, start=h.extra.get("start"),
            end=h.extra.get("end"), frame=h.extra.get("frame"), score=score,
            expanded_score=None if expanded is None else round(float(expanded), 5)))
    return out


def search_faces(collection: SpaceCollections, pipeline: Pipeline, image: np.ndarray, *,
                 k: int = 10, face: int | None = None, all_faces: bool = False,
                 target: str = "all", exclude_hash: str = "", judge: Judge | None = None,
                 query_name: str = "query", detected: list[Face] | None = None,
                 matcher: VisibleMatcher | None = None,
                 max_pixels: int = 100_000_000,
                 expand: Expander | None = None) -> list[SearchResult]:
    """Search the collection for the chosen face(s) of a BGR image (`detected`: its faces
    as this pipeline's detector found them already, to skip detecting again).

    With a `matcher`, a covered face's best image hits are re-ranked on what the cover
    leaves visible (see `match_visible`); an uncovered face's search is unchanged.
    With `expand`, an uncovered face placed in a person is searched with the person's
    faces too (revsearch.people.expand); a covered face is not expanded, its re-ranking
    on the visible part was measured on the plain hits only.
    """
    faces = pipeline.detect_query(image) if detected is None else detected
    chosen = select_faces(faces, face, all_faces, query_name)
    described = describe_faces(faces)
    vectors = pipeline.embedder.embed(image, [faces[i] for i in chosen])
    judge = judge or Judge()
    threshold = judge.decision.threshold
    results = []
    for i, v in zip(chosen, vectors, strict=True):
        occlusion = matcher.inspect(image, faces[i].landmarks) if matcher else Occlusion()
        wanted = max(k, matcher.settings.rerank) if occlusion.covered else k
        hits = search_vectors(collection, v[None], wanted, target=target,
                              exclude_hash=exclude_hash, judge=judge)
        if occlusion.covered:
            hits = match_visible(collection, matcher, image, faces[i], occlusion, hits,
                                 threshold, max_pixels)
        expanded = expand(v, k, target, exclude_hash) \
            if expand is not None and not occlusion.covered else None
        if expanded is not None:
            hits = judged_hits(expanded[1], v[None], judge)
        results.append(SearchResult(query_name, described[i], threshold, hits[:k],
                                    decision=judge.decision, occlusion=occlusion.region,
                                    occlusion_handled=occlusion.covered,
                                    expanded=expanded is not None,
                                    expanded_person_id=expanded[0] if expanded else None))
    return results


def match_visible(collection: SpaceCollections, matcher: VisibleMatcher, image: np.ndarray,
                  face: Face, occlusion: Occlusion, hits: list[Hit],
                  threshold: float | None, max_pixels: int = 100_000_000) -> list[Hit]:
    """Re-rank the first `matcher.settings.rerank` hits of a covered query face: each
    photo hit's face is cut again from its file with its stored landmarks, the same
    cells are painted over in it and in the query, and both are embedded again.

    Hits that cannot be looked at again (videos, files gone or unreadable) are ranked by
    their plain similarity. Each re-ranked hit keeps its cosine in `similarity` (what
    `match` compares with the threshold, calibrated on whole faces) and gets the
    re-ranking score in `visible`, so the shown number and the decision agree.
    """
    head = hits[:matcher.settings.rerank]
    usable = candidate_crops(collection, head, max_pixels)
    if usable:
        scores = matcher.rescore(image, face.landmarks, occlusion,
                                 np.stack([c for _, c in usable]),
                                 np.array([h.similarity for h, _ in usable]))
        for (h, _), score in zip(usable, scores, strict=True):
            h.visible = round(float(score), 5)
    ranked = sorted(head, key=lambda h: -(h.similarity if h.visible is None else h.visible))
    ranked += hits[len(head):]
    for rank, h in enumerate(ranked, start=1):
        h.rank = rank
    return ranked


def candidate_crops(collection: SpaceCollections, hits: Sequence[Hit],
                    max_pixels: int = 100_000_000) -> list[tuple[Hit, np.ndarray]]:
    """The photo hits whose face can be cut again from its file (with the stored
    landmarks), each with its aligned crop; videos and unreadable files are left out."""
    photos = [h for h in hits if h.media_type == "image"]
    landmarks = collection.face_landmarks([h.face_id for h in photos])
    with ThreadPoolExecutor(max_workers=4) as pool:
        crops = list(pool.map(lambda h: _crop_of(h, landmarks.get(h.face_id), max_pixels),
                              photos))
    return [(h, c) for h, c in zip(photos, crops, strict=True) if c is not None]


def _crop_of(hit: Hit, landmarks: np.ndarray | None, max_pixels: int) -> np.ndarray | None:
    """The aligned crop of a photo hit's face, or None if its file cannot be read."""
    if landmarks is None:
        return None
    try:
        return align_face(load_image(hit.path, max_pixels), landmarks, CROP)
    except MediaError as exc:
        log.info("occlusion re-ranking skips %s: %s", hit.path, exc)
        return None


def search_tracks(collection: SpaceCollections, pipeline: Pipeline, tracks: Sequence[Track], *,
                  k: int = 10, track: int | None = None, all_tracks: bool = False,
                  target: str = "all", exclude_hash: str = "", judge: Judge | None = None,
                  query_name: str = "query") -> list[SearchResult]:
    """Search the collection for the chosen track(s) of a query video."""
    chosen = select_tracks(tracks, track, all_tracks, query_name)
    described = describe_tracks(tracks)
    judge = judge or Judge()
    results = []
    for i in chosen:
        best = tracks[i].best
        face = QueryFace(i, described[i].box,
                         [round(float(v), 1) for v in best.face.landmarks.reshape(-1)],
                         round(best.face.score, 4), described[i].default)
        hits = search_vectors(collection, pipeline.describe_track(tracks[i]), k, target=target,
                              exclude_hash=exclude_hash, judge=judge, query_kind="video")
        results.append(SearchResult(query_name, face, judge.decision.threshold, hits,
                                    described[i], decision=judge.decision))
    return results
