"""What the endpoints share: one open index per pipeline, and the recent queries.

Queries are `revsearch.Query` objects: decoded and analysed once when uploaded, so a
click on another face searches again without another upload or detection.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from revsearch.api import RevSearch
from revsearch.config import Settings
from revsearch.errors import MediaError, NoFaceError, NotFoundError, RevsearchError
from revsearch.ingest import IngestReport
from revsearch.listing import MediaItem
from revsearch.media import content_hash, sniff
from revsearch.people import ClusterReport, Person
from revsearch.query import Query
from revsearch.search import QueryFace, SearchResult
from revsearch.serve.jobs import Job
from revsearch.serve.thumbnails import media_thumbnail, query_track_thumbnail
from revsearch.video.track import iou

_EXTENSIONS = {b"\xff\xd8\xff": ".jpg", b"\x89PNG": ".png", b"GIF8": ".gif", b"BM": ".bmp",
               b"RIFF": ".webp", b"II*\x00": ".tif", b"MM\x00*": ".tif"}


class UnsupportedType(RevsearchError):
    """An upload that is neither an image nor a video by content (HTTP 415)."""


class QueryCache:
    """The last `size` queries, by id (their content hash)."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[str, Query] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, qid: str) -> Query | None:
        with self._lock:
            q = self._items.get(qid)
            if q:
                self._items.move_to_end(qid)
            return q

    def put(self, query: Query) -> None:
        # An evicted query is not closed here: a request may still be searching it. Its
        # temporary video goes when the last reference does (see `Query`).
        with self._lock:
            self._items[query.digest] = query
            self._items.move_to_end(query.digest)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            for q in self._items.values():
                q.close()
            self._items.clear()


class Service:
    """One open index per pipeline, the query cache, and the work behind each route."""

    def __init__(self, settings: Settings) -> None:
        # Requests run side by side on the server's threads, so each model call gets one
        # thread: two-thread calls from several requests at once only fight over the
        # cores (bench/bench_api.py). Background ingests use `workers` processes.
        self.ingest_workers = settings.workers
        self.settings = replace(settings, workers=1)
        self._indexes: dict[str, RevSearch] = {}
        self._open_lock = threading.Lock()
        self._index_lock = threading.Lock()
        self.queries = QueryCache()
        self.face = self.index_for("face")

    def index_for(self, pipeline: str) -> RevSearch:
        if pipeline not in ("face", "baseline"):
            raise ValueError("pipeline must be face or baseline")
        with self._open_lock:
            if pipeline not in self._indexes:
                self._indexes[pipeline] = RevSearch(replace(self.settings, pipeline=pipeline,
                                                            progress=False))
            return self._indexes[pipeline]

    def close(self) -> None:
        self.queries.clear()
        for rs in reversed(list(self._indexes.values())):
            with contextlib.suppress(Exception):
                rs.close()

    # -- queries ---------------------------------------------------------------------
    def add_query(self, data: bytes, name: str) -> Query:
        if sniff(data[:16]) not in ("image", "video"):
            raise UnsupportedType("not an image or a video (the content was checked, not "
                                  "the file name); send JPEG, PNG, BMP, GIF, TIFF, WebP, "
                                  "MP4, AVI, MPEG, MKV or WebM")
        found = self.queries.get(content_hash(data))
        if found:
            return found
        query = self.face.query(data, name=name)
        self.queries.put(query)
        return query

    def cached_query(self, qid: str) -> Query:
        found = self.queries.get(qid)
        if found is None:
            raise NotFoundError("no such query (queries are kept for a while only); upload "
                                "the file again")
        return found

    def query_from_media(self, media_id: str) -> Query:
        path = Path(self.face.get(media_id).path)
        if path.is_dir():
            raise MediaError("frame folders cannot be used as a web query; use the CLI")
        return self.add_query(path.read_bytes(), path.name)

    def media(self, media_id: str) -> MediaItem:
        return self.face.get(media_id)

    # -- search ----------------------------------------------------------------------
    def search(self, query: Query, *, k: int, face: int | None, box: list[float] | None,
               track: int | None, target: str, pipeline: str,
               far: float | None = None, expand: bool | None = None) -> list[SearchResult]:
        index = self.index_for(pipeline)
        looks_at_faces = index.space.kind == "face"
        if query.kind == "video" and not looks_at_faces:
            raise MediaError("video queries need a face space (pipeline face)")
        if box is not None and looks_at_faces and query.kind == "image":
            face = _face_at(query.faces, box)
        return index.search(query, k, face=face, track=track, target=target, far=far,
                            expand=expand)

    # -- thumbnails ------------------------------------------------------------------
    def thumbnail(self, media_id: str, face: int | None, track: int | None) -> bytes:
        return media_thumbnail(self.face.get(media_id), face, track, self.settings.max_pixels)

    def query_track_thumbnail(self, qid: str, track: int) -> bytes:
        query = self.queries.get(qid)
        if query is None or query.kind != "video":
            raise NotFoundError("no such video query (queries are kept for a while only)")
        return query_track_thumbnail(query, track)

    # -- people ----------------------------------------------------------------------
    def people(self) -> list[Person]:
        with self._index_lock:  # the first call clusters and writes
            return self.face.people()

    def cluster(self, recluster: bool) -> ClusterReport:
        with self._index_lock:
            return self.face.cluster(recluster)

    def people_verb(self, verb: str, *args: str) -> Person:
        """name_person, merge_people or remove_face, one writer at a time."""
        with self._index_lock:
            return getattr(self.face, verb)(*args)

    def index_upload(self, data: bytes, name: str) -> dict:
        kind = sniff(data[:16])
        if kind not in ("image", "video"):
            raise UnsupportedType("not an image or a video (the content was checked)")
        folder = self.settings.home / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        ext = next((e for magic, e in _EXTENSIONS.items() if data.startswith(magic)),
                   ".video" if kind == "video" else ".img")
        path = folder / f"{content_hash(data)}{ext}"
        if not path.exists():
            path.write_bytes(data)
        with self._index_lock:
            report = self.face.index([path], labels="none")
        return {"path": str(path), "original_name": name, **asdict(report)}


    def run_job(self, job: Job) -> IngestReport:
        """A background ingest (serve/jobs.py): one writer at a time, as for uploads."""
        with self._index_lock:
            return self.face.index(job.paths, labels=job.labels, sync=job.sync,
                                   on_progress=job.progress, on_problem=job.problems.append,
                                   workers=self.ingest_workers)


def _face_at(faces: list[QueryFace], box: list[float]) -> int:
    if not faces:
        raise NoFaceError("no face found in the query")
    overlaps = [iou(f.box, box) for f in faces]
    best = int(np.argmax(overlaps))
    if overlaps[best] <= 0.0:
        raise NoFaceError("no detected face overlaps the given box")
    return best
