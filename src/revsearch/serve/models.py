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

from revsearch.ingest.records import LABEL_MODES
from revsearch.listing import MediaItem
from revsearch.people import ClusterReport, Person, PersonItem
from revsearch.query import Query
from revsearch.search import SearchResult
from revsearch.serve.jobs import STATES, Job


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
    score: float | None = Field(None, description=(
        "the normalised score the match was decided on (norm setting); null: the cosine"))
    visible: float | None = Field(None, description=(
        "a covered query's score on the visible part, which ranked the first hits; "
        "match still compares the cosine"))
    match: bool | None = Field(description="against the decision's threshold; null: none")
    label: str
    media_type: Literal["image", "video"]
    start: float | None = Field(description="video: seconds where the person is seen")
    end: float | None
    frame: int | None = Field(description="video: the thumbnail frame")
    person_id: int | None = Field(None, description="the person of its face, if clustered")
    person: str = Field("", description="that person's name, if named")
    expanded_score: float | None = Field(None, description=(
        "person query expansion: the blend of the query face's and its person's "
        "similarity that ranked this hit; null: ranked by `similarity`"))
    media_url: str
    thumb_url: str


class DecisionOut(BaseModel):
    """How `match` was decided: the operating point, or why there is no decision."""

    far: float | None = Field(description="stated false-accept rate of the threshold; "
                                          "null: set by hand, or no decision")
    threshold: float | None = Field(description="photo to photo; null: no match decision")
    score: str = Field(description="what the threshold applies to: cosine, or the "
                                   "normalisation (hits then carry `score`)")
    source: str = Field(description="what the threshold was calibrated on")
    note: str = Field(description="why there is no decision, or what to keep in mind")
    by_kind: dict[str, float] = Field(description="thresholds of other comparison kinds "
                                                  "(track, photo_track), when they differ")


class ResultOut(BaseModel):
    """The hits for one searched face (photo query) or track (video query)."""

    query: str
    face: FaceOut
    threshold: float | None
    decision: DecisionOut
    hits: list[HitOut]
    track: TrackOut | None
    person_id: int | None = Field(None, description="the query face's person: the top "
                                  "hit's, when it is a match")
    person: str = ""
    occlusion: str = Field(default="none", description="what covers the query face: none, "
                           "eyes, lower (a mask), other (photos only)")
    occlusion_handled: bool = Field(default=False, description="the hits were re-ranked "
                                    "on the visible part of the covered face")
    expanded: bool = Field(default=False, description="person query expansion was used: "
                           "the query face's person's faces searched with it")
    expanded_person_id: int | None = Field(None, description="the person whose faces "
                                           "searched with the query face")


class SearchOut(BaseModel):
    query: QueryOut
    pipeline: str
    results: list[ResultOut]


class ProblemOut(BaseModel):
    path: str
    reason: str


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
    far: float | None = Field(None, description="the operating point of `threshold`")
    norm: str = "none"
    faces: int
    tracks: int
    images: int
    videos: int
    max_upload_bytes: int


class JobIn(BaseModel):
    """Folders (or files) to index in the background: absolute paths inside the server's
    watched or allowed folders."""

    paths: list[str] = Field(min_length=1, max_length=100)
    labels: Literal[LABEL_MODES] = Field("auto", description="as `revsearch index --labels`")
    sync: bool = Field(False, description="also forget indexed files under paths that are gone")


class ReportOut(BaseModel):
    """A finished ingest: the counts of `revsearch index` and every file not indexed."""

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


class IndexOut(ReportOut):
    """What indexing an upload did (the ingest report), and where the file was kept."""

    model_config = ConfigDict(extra="allow")  # the ingest report may grow fields

    path: str
    original_name: str


class JobOut(BaseModel):
    """A background ingest and how far it got."""

    id: str
    paths: list[str]
    labels: str
    sync: bool
    origin: Literal["api", "watch"] = Field(description="a client's job, or a watched "
                                            "folder's")
    state: Literal[STATES]
    created: float = Field(description="Unix time")
    finished: float | None
    done: int = Field(description="files processed so far")
    total: int | None = Field(description="files to process (new or changed); null while "
                              "the folders are scanned")
    rate: float | None = Field(description="files per second")
    eta: float | None = Field(description="seconds left at that rate")
    problems: list[ProblemOut] = Field(description="files not indexed, so far")
    report: ReportOut | None = Field(description="when done")
    error: str


class JobsOut(BaseModel):
    jobs: list[JobOut]


def job_out(job: Job) -> JobOut:
    report = asdict(job.report) if job.report is not None else None
    rate, eta = job.rate(), job.eta()
    return JobOut(id=job.id, paths=job.paths, labels=job.labels, sync=job.sync,
                  origin=job.origin, state=job.state, created=job.created,
                  finished=job.finished, done=job.done, total=job.total,
                  rate=None if rate is None else round(rate, 2),
                  eta=None if eta is None else round(eta, 1),
                  problems=[ProblemOut(**asdict(p)) for p in list(job.problems)],
                  report=ReportOut(**report) if report else None, error=job.error)


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
                     decision=DecisionOut(**asdict(result.decision)),
                     track=TrackOut(**asdict(result.track)) if result.track else None,
                     person_id=result.person_id, person=result.person,
                     occlusion=result.occlusion, occlusion_handled=result.occlusion_handled,
                     expanded=result.expanded,
                     expanded_person_id=result.expanded_person_id)


def media_out(item: MediaItem) -> MediaOut:
    fields = {k: v for k, v in asdict(item).items() if k in MediaOut.model_fields}
    track = "?track=0" if item.media_type == "video" else ""
    return MediaOut(**fields, name=Path(item.path).name,
                    thumb_url=f"/api/thumb/{item.image_id}{track}")


class PersonItemOut(BaseModel):
    """A face (in a photo) or face track (in a video) of a person."""

    item_id: str = Field(description="the face id, or `<video_id>_NNNN` for a track")
    kind: Literal["face", "track"]
    media_id: str
    index: int = Field(description="the face's number in its photo, or the track's")
    path: str
    label: str
    box: list[float]
    similarity: float | None = Field(description="cosine to the person's mean")
    media_url: str
    thumb_url: str


class PersonOut(BaseModel):
    """A person: a cluster of faces and face tracks, maybe named."""

    person_id: int
    name: str
    name_source: Literal["user", "label", ""] = Field(
        description="user: named by hand; label: seeded from folder labels")
    faces: int = Field(description="faces and face tracks")
    media: int = Field(description="photos and videos")
    cover: PersonItemOut | None = Field(description="the representative face")
    items: list[PersonItemOut] | None = Field(None, description="GET /api/people/{id} only")


class PeopleOut(BaseModel):
    people: list[PersonOut]
    total: int = Field(description="persons in all (the list may be a page)")


class ClusterOut(BaseModel):
    """What a clustering run did."""

    method: str
    threshold: float
    items: int
    persons: int
    new: int
    joined: int
    created: int
    removed: int
    seconds: float


def item_out(item: PersonItem) -> PersonItemOut:
    number = f"track={item.index}" if item.kind == "track" else f"face={item.index}"
    return PersonItemOut(**asdict(item), media_url=f"/api/media/{item.media_id}",
                         thumb_url=f"/api/thumb/{item.media_id}?{number}")


def person_out(person: Person) -> PersonOut:
    return PersonOut(person_id=person.person_id, name=person.name,
                     name_source=person.name_source, faces=person.faces, media=person.media,
                     cover=item_out(person.cover) if person.cover else None,
                     items=None if person.items is None
                     else [item_out(i) for i in person.items])


def cluster_out(report: ClusterReport) -> ClusterOut:
    return ClusterOut(**asdict(report))
