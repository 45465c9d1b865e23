"""The public Python API: `connect()` an index, then `index()`, `faces()`, `search()`.

    >>> import revsearch
    >>> with revsearch.connect() as rs:                       # embedded Milvus Lite
    ...     rs.index(["photos/", "videos/"])                   # incremental
    ...     for hit in rs.search("query.jpg", k=5)[0].hits:    # or a video: "clip.mp4"
    ...         print(hit.rank, hit.path, hit.similarity, hit.match, hit.start, hit.end)

`connect(db="http://host:19530")` uses a Milvus server instead; every other argument
is a setting (see `config.Settings`), e.g. `connect(embedder="dlib", flip=True)`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from revsearch.config import Settings, load_settings
from revsearch.errors import MediaError, RevsearchError
from revsearch.faces.pipeline import Pipeline, VideoAnalysis
from revsearch.ingest import IngestReport, run_ingest
from revsearch.media import content_hash, decode_image, read_bytes, sniff
from revsearch.search import (
    QueryFace,
    QueryTrack,
    SearchResult,
    describe_faces,
    describe_tracks,
    search_faces,
    search_tracks,
)
from revsearch.spaces import Registry, Space, space_for
from revsearch.store import SpaceCollections, Store
from revsearch.video.frames import is_video, stat_video, video_digest

log = logging.getLogger(__name__)

Query = str | os.PathLike | bytes | np.ndarray


class RevSearch:
    """An open index: one database, one face pipeline (models load on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.space: Space = space_for(settings)
        self.store = Store(settings.db_uri)
        self._pipeline: Pipeline | None = None
        self._collection: SpaceCollections | None = None
        self._threshold: tuple[float | None] | None = None
        self._checked = False

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> RevSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            self._pipeline = Pipeline(self.settings, threads=max(1, self.settings.workers),
                                      space=self.space)
        return self._pipeline

    @property
    def collection(self) -> SpaceCollections:
        if self._collection is None:
            # A declared dimension avoids loading a model just to open the database.
            self._collection = open_collection(self.store, self.space, self.settings,
                                               dim=self.space.dim or self.pipeline.dim)
        return self._collection

    # -- verbs ---------------------------------------------------------------------
    def index(self, paths: Sequence[str | os.PathLike], *, labels: str = "auto",
              sync: bool = False, report: str | os.PathLike | None = None) -> IngestReport:
        """Add every image under `paths`; unchanged files are skipped, changed ones redone.

        `labels`: 'auto' (LFW layout `Name/Name_0001.jpg`), 'parent' (folder name) or
        'none'. `sync=True` also forgets files under `paths` that no longer exist.
        Files that cannot be indexed are listed in the returned report and its log.
        """
        return run_ingest(paths, self.collection, self.settings, labels=labels, sync=sync,
                          report_path=report, pipeline=self._pipeline)

    def faces(self, query: Query) -> list[QueryFace] | list[QueryTrack]:
        """The faces found in a query image, left to right (`default` marks the largest),
        or the face tracks of a query video (`default` marks the most prominent)."""
        with self._video_query(query) as video:
            if video is not None:
                return describe_tracks(self.track(video).tracks)
        image, _, _ = self._load_query(query)
        return describe_faces(self.pipeline.detect(image))

    def track(self, video: str | os.PathLike) -> VideoAnalysis:
        """Sample a video file or frame folder and follow every face through it."""
        return self.pipeline.track_video(video, self.settings.sampling,
                                         self.settings.max_pixels)

    def search(self, query: Query, k: int = 10, *, face: int | None = None,
               all_faces: bool = False, track: int | None = None, all_tracks: bool = False,
               target: str = "all", include_query: bool = False) -> list[SearchResult]:
        """The k images and videos that best match the person of interest in `query`.

        `query` is a photo (path, bytes or BGR array) or a video (a file or a YouTube
        Faces frame folder). Its person of interest is the largest face of a photo
        (`face=I` picks another, `all_faces` searches each) or the most prominent face
        track of a video (`track=I`, `all_tracks`). `target` limits the results to
        "images" or "videos"; "all" merges both by similarity.

        One `SearchResult` per searched face or track; its hits are grouped per image
        or video (its best face or track), best first, each with a cosine similarity,
        `match` against the calibrated threshold and, for videos, the time span where
        the person is seen. A query that is itself in the index is left out of its own
        results unless `include_query`. Raises NoFaceError when the query shows no face.
        """
        self.check()
        with self._video_query(query) as video:
            if video is not None:
                digest = "" if include_query else video_digest(video)
                return search_tracks(self.collection, self.pipeline, self.track(video).tracks,
                                     k=k, track=track, all_tracks=all_tracks, target=target,
                                     exclude_hash=digest, threshold=self.threshold(),
                                     query_name=str(query) if video == query else "upload")
        image, digest, name = self._load_query(query)
        return search_faces(self.collection, self.pipeline, image, k=k, face=face,
                            all_faces=all_faces, target=target,
                            exclude_hash="" if include_query else digest,
                            threshold=self.threshold(), query_name=name)

    def check(self) -> None:
        """Refuse to answer from a damaged index (once per open index: the check counts
        rows, which costs a few hundred milliseconds on a large Milvus Lite file)."""
        if not self._checked:
            self.collection.check()
            self._checked = True

    def threshold(self) -> float | None:
        """The match threshold: a setting if given, else the stored calibration."""
        if self.settings.threshold is not None:
            return self.settings.threshold
        if self._threshold is None:
            found = self.space.calibration(self.settings.home)
            if found is None and self.space.decides:
                log.warning("no calibration for %s: run `revsearch calibrate --space %s` or "
                            "pass --threshold; results carry no match decision",
                            self.space.key, self.space.name)
            self._threshold = (found.threshold if found else None,)
        return self._threshold[0]

    def stats(self) -> dict:
        counts = self.collection.count()
        return {"db": self.settings.db_uri, "backend": "lite" if self.store.is_lite else "server",
                "pipeline": self.space.key,
                "detector": self.space.detector_name(self.settings),
                "threshold": self.threshold(), **counts}

    @contextmanager
    def _video_query(self, query: Query) -> Iterator[str | os.PathLike | None]:
        """The query as a video path (uploaded bytes go to a temporary file), or None."""
        if isinstance(query, np.ndarray):
            yield None
        elif isinstance(query, bytes):
            if sniff(query[:16]) != "video":
                yield None
                return
            if len(query) > self.settings.max_video_bytes:
                raise MediaError(f"video too large: {len(query)} bytes > limit "
                                 f"{self.settings.max_video_bytes}")
            with tempfile.NamedTemporaryFile(suffix=".video") as fh:
                fh.write(query)
                fh.flush()
                yield fh.name
        elif is_video(Path(query)):
            if stat_video(Path(query))[0] > self.settings.max_video_bytes:
                raise MediaError(f"video too large: {query} is over "
                                 f"{self.settings.max_video_bytes} bytes")
            yield query
        else:
            yield None

    def _load_query(self, query: Query) -> tuple[np.ndarray, str, str]:
        if isinstance(query, np.ndarray):
            return query, "", "query image"
        if isinstance(query, bytes):
            return decode_image(query, self.settings.max_pixels), content_hash(query), "upload"
        path = Path(query)
        data = read_bytes(path, self.settings.max_file_bytes)
        return decode_image(data, self.settings.max_pixels), content_hash(data), str(path)


def open_collection(store: Store, space: Space, settings: Settings,
                    dim: int | None = None) -> SpaceCollections:
    """The collections of `space` in `store`, created with the space's index parameters
    for that backend if new."""
    index_params, search_ef = space.index.for_backend(store.is_lite, settings)
    return store.space(space.key, dim or space.dim, space.metric, index_params, search_ef)


def migrate(source: str, target: str, spaces: Sequence[str] | None = None) -> dict[str, dict]:
    """Copy embedding spaces (all by default) from one database to another, e.g. from a
    Milvus Lite file to a Milvus server. Rows are upserted, so a re-run after a failure
    is safe; the copy is checked by counting. Stop ingests into `source` first."""
    from revsearch.errors import DatabaseError
    from revsearch.store import copy_space

    settings = load_settings()
    registry = Registry(settings.home)
    copied: dict[str, dict] = {}
    with Store(source) as src, Store(target) as dst:
        for key in spaces or src.list_spaces():
            s = src.open_space(key)
            # A registered space brings its own index parameters; an unknown one (a model
            # file used unregistered) gets the target backend's defaults.
            space = registry.find_key(key)
            index_params, search_ef = (space.index.for_backend(dst.is_lite, settings)
                                       if space else (None, None))
            d = dst.space(key, s.dim, s.metric, index_params, search_ef)
            copied[key] = copy_space(s, d)
            c = d.count()
            held = {"faces": c["faces"], "images": c["images"] + c["videos"],
                    "tracks": c["tracks"]}
            if held != copied[key]:
                raise DatabaseError(f"after copying {key}, {target} holds {held} rows, "
                                    f"not {copied[key]}: it had other rows already?")
    return copied


def describe_space(space: Space, settings: Settings) -> dict:
    """What `revsearch models` shows of a space: its models, files, digests, calibration."""
    from dataclasses import asdict

    cal = space.calibration(settings.home)
    return {"name": space.name, "key": space.key, "kind": space.kind,
            "builtin": space.builtin, "embedder": space.embedder, "dim": space.dim,
            "metric": space.metric, "detector": space.detector_name(settings),
            "members": [m.name for m in space.members], "decides": space.decides,
            "description": space.description, "licence": space.licence,
            "files": [{"name": f.name, "where": f.where, "sha256": f.sha256}
                      for f in space.all_files()],
            "calibration": asdict(cal) if cal else None}


def connect(db: str | None = None, **settings: object) -> RevSearch:
    """Open (creating if needed) the index at `db`: a `.db` path or a Milvus server URI."""
    return RevSearch(load_settings(db=db, **settings))


def index(paths: Sequence[str | os.PathLike], db: str | None = None, *, labels: str = "auto",
          sync: bool = False, **settings: object) -> IngestReport:
    """Open the index, add `paths` to it (see `RevSearch.index`), close it."""
    with connect(db, **settings) as rs:
        return rs.index(paths, labels=labels, sync=sync)


def search(query: Query, db: str | None = None, k: int = 10, *, face: int | None = None,
           all_faces: bool = False, track: int | None = None, all_tracks: bool = False,
           target: str = "all", **settings: object) -> list[SearchResult]:
    """Open the index, search it (see `RevSearch.search`), close it."""
    with connect(db, **settings) as rs:
        return rs.search(query, k, face=face, all_faces=all_faces, track=track,
                         all_tracks=all_tracks, target=target)


__all__ = ["RevSearch", "RevsearchError", "connect", "index", "migrate", "search"]
