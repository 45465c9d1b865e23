"""The REST API's response bodies, so that /docs and /openapi.json show their schemas.

The field names are the API's contract with the web page (web/app.js) and with anyone
else's client: they mirror the Python API's records (`revsearch.search`,
`revsearch.listing`), plus the URLs a browser needs.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from revsearch.listing import MediaItem
from revsearch.query import Query
from revsearch.search import SearchResult


class FaceOut(BaseModel):
    """A face found in a query photo; `index` numbers faces left to right."""

    index: int
    box: list[float] = Field(description="x, y, width, height in the photo's pixels")
    landmarks: list[float] = Field(description="5 points (eyes, nose, mouth corners), x y")
    score: float
    default: bool = Field(description="the largest face: searched unless another is chosen")


class TrackOut(BaseModel):
    """A face track of a query video; `index` orders tracks by first appearance."""

    index: int
    start: float = Field(description="seconds")
    end: float
    frames: int = Field(description="sampled frames the face was seen in")
    frame: int = Field(description="its best frame")
    box: list[float] = Field(description="the face in that frame")
    default: bool = Field(description="the most prominent track: searched unless chosen")


class QueryTrackOut(TrackOut):
    thumb_url: str


class ImageQueryOut(BaseModel):
    """A query photo, kept by the server under `id` (its content hash) for a while."""

    id: str
    kind: Literal["image"]
    name: str
    faces: list[FaceOut]
    width: int
    height: int


class VideoQueryOut(BaseModel):
    """A query video, kept by the server under `id` (its content hash) for a while."""

    id: str
    kind: Literal["video"]
    name: str
    tracks: list[QueryTrackOut]


QueryOut = Annotated[ImageQueryOut | VideoQueryOut, Field(discriminator="kind")]


class HitOut(BaseModel):
    """One result: an indexed photo (its best face) or video (its best track)."""

    rank: int
    path: str
    image_id: str
    face_id: str
    face_index: int = Field(description="the face's number, or the track's for a video")
    box: list[float]
    similarity: float = Field(description="cosine similarity (baseline: minus L2 distance)")
    match: bool | None = Field(description="against the calibrated threshold; null: none")
    label: str
    media_type: Literal["image", "video"]
    start: float | None = Field(description="video: seconds where the person is seen")
    end: float | None
    frame: int | None = Field(description="video: the thumbnail frame")
    media_url: str
    thumb_url: str


class ResultOut(BaseModel):
    """The hits for one searched face (photo query) or track (video query)."""

    query: str
    face: FaceOut
    threshold: float | None
    hits: list[HitOut]
    track: TrackOut | None
    occlusion: str = Field(default="none", description="what covers the query face: none, "
                           "eyes, lower (a mask), other (photos only)")
    occlusion_handled: bool = Field(default=False, description="the hits were re-ranked "
                                    "on the visible part of the covered face")


class SearchOut(BaseModel):
    query: QueryOut
    pipeline: str
    results: list[ResultOut]


class ProblemOut(BaseModel):
    path: str
    reason: str


class IndexOut(BaseModel):
    """What indexing an upload did (the ingest report), and where the file was kept."""

    model_config = ConfigDict(extra="allow")  # the ingest report may grow fields

    path: str
    original_name: str
    scanned: int
    indexed: int
    unchanged: int
    removed: int
    faces: int
    no_face: int
    videos: int
    tracks: int
    problems: list[ProblemOut]
    seconds: float
    log_path: str


class MediaOut(BaseModel):
    """An indexed photo or video."""

    image_id: str
    path: str
    label: str
    media_type: Literal["image", "video"]
    n_faces: int = Field(description="stored faces, or a video's track descriptors")
    width: int
    height: int
    name: str
    thumb_url: str


class CollectionOut(BaseModel):
    items: list[MediaOut]


class StatsOut(BaseModel):
    """What the index holds, and with which model."""

    model_config = ConfigDict(extra="allow")  # `RevSearch.stats()` may grow fields

    db: str
    backend: Literal["lite", "server"]
    pipeline: str
    detector: str
    threshold: float | None
    faces: int
    tracks: int
    images: int
    videos: int
    max_upload_bytes: int


def query_out(query: Query) -> ImageQueryOut | VideoQueryOut:
    """A query as the server keeps it: its id is its content hash."""
    qid = query.digest
    if query.kind == "video":
        tracks = [QueryTrackOut(**asdict(t), thumb_url=f"/api/queries/{qid}/tracks/{t.index}.jpg")
                  for t in query.tracks]
        return VideoQueryOut(id=qid, kind="video", name=query.name, tracks=tracks)
    assert query.image is not None
    height, width = query.image.shape[:2]
    return ImageQueryOut(id=qid, kind="image", name=query.name,
                         faces=[FaceOut(**asdict(f)) for f in query.faces],
                         width=width, height=height)


def result_out(result: SearchResult) -> ResultOut:
    hits = []
    for hit in result.hits:
        number = f"track={hit.face_index}" if hit.media_type == "video" \
            else f"face={hit.face_index}"
        hits.append(HitOut(**asdict(hit), media_url=f"/api/media/{hit.image_id}",
                           thumb_url=f"/api/thumb/{hit.image_id}?{number}"))
    return ResultOut(query=result.query, face=FaceOut(**asdict(result.face)),
                     threshold=result.threshold, hits=hits,
                     track=TrackOut(**asdict(result.track)) if result.track else None,
                     occlusion=result.occlusion, occlusion_handled=result.occlusion_handled)


def media_out(item: MediaItem) -> MediaOut:
    fields = {k: v for k, v in asdict(item).items() if k in MediaOut.model_fields}
    track = "?track=0" if item.media_type == "video" else ""
    return MediaOut(**fields, name=Path(item.path).name,
                    thumb_url=f"/api/thumb/{item.image_id}{track}")
