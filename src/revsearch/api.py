"""The public Python API: `connect()` an index, then `index()`, `query()`, `search()`.

    >>> import revsearch
    >>> with revsearch.connect() as rs:                       # embedded Milvus Lite
    ...     rs.index(["photos/", "videos/"])                   # incremental
    ...     for hit in rs.search("query.jpg", k=5)[0].hits:    # or a video: "clip.mp4"
    ...         print(hit.rank, hit.path, hit.similarity, hit.match, hit.start, hit.end)

`connect(db="http://host:19530")` uses a Milvus server instead; every other argument
is a setting (see `config.Settings`), e.g. `connect(embedder="dlib", flip=True)`.

Queries are paths (photos, video files, frame folders), bytes, or numpy arrays in
OpenCV's BGR order (`rs.query(array, colour="rgb")` for RGB; see `revsearch.query`).
Every verb takes a `Query` too: `rs.query(x)` decodes and detects once for many calls.
The model-level verbs `detect`, `embed` and `verify` need nothing indexed; `media`,
`get` and `remove` read and prune what is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from revsearch.config import Settings, load_settings
from revsearch.errors import MediaError, RevsearchError
from revsearch.faces.detect import Face
from revsearch.faces.occlusion import VisibleMatcher, create_matcher
from revsearch.faces.pipeline import Pipeline, VideoAnalysis
from revsearch.ingest import IngestReport, Problem, run_ingest
from revsearch.listing import MediaItem, get_media, list_media
from revsearch.norm import Cohort, NormParams, asnorm
from revsearch.people import (
    DEFAULT_METHOD,
    ClusterReport,
    PeopleBook,
    Person,
    PersonSearch,
    annotate_persons,
    person_media,
)
from revsearch.people import expand as expand_query
from revsearch.query import Query, Source, load
from revsearch.search import (
    Expander,
    Judge,
    QueryFace,
    QueryTrack,
    Scorer,
    SearchResult,
    Verification,
    describe_faces,
    describe_tracks,
    search_faces,
    search_tracks,
    select_faces,
    similarity,
)
from revsearch.spaces import Registry, Space, space_for
from revsearch.spaces.calibration import FARS, Calibration, Decision
from revsearch.store import FaceHit, SpaceCollections, Store, image_id_for
from revsearch.video.track import Track

log = logging.getLogger(__name__)


class RevSearch:
    """An open index: one database, one face pipeline (models load on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.space: Space = space_for(settings)
        self.store = Store(settings.db_uri)
        self._pipeline: Pipeline | None = None
        self._matcher: tuple[VisibleMatcher | None] | None = None
        self._collection: SpaceCollections | None = None
        self._calibration: tuple[Calibration | None] | None = None
        self._cohort: Cohort | None = None
        self._checked = False
        self._book: PeopleBook | None = None

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
    def matcher(self) -> VisibleMatcher | None:
        """Occlusion handling for query faces, None when off or the space cannot."""
        if self._matcher is None:
            on = self.settings.occlusion and self.space.kind == "face"
            self._matcher = (create_matcher(self.pipeline.embedder) if on else None,)
        return self._matcher[0]

    @property
    def collection(self) -> SpaceCollections:
        if self._collection is None:
            # A declared dimension avoids loading a model just to open the database.
            self._collection = open_collection(self.store, self.space, self.settings,
                                               dim=self.space.dim or self.pipeline.dim)
        return self._collection

    # -- verbs ---------------------------------------------------------------------
    def index(self, paths: Sequence[str | os.PathLike], *, labels: str = "auto",
              sync: bool = False, report: str | os.PathLike | None = None,
              on_progress: Callable[[int, int], None] | None = None,
              on_problem: Callable[[Problem], None] | None = None,
              workers: int | None = None) -> IngestReport:
        """Add every image under `paths`; unchanged files are skipped, changed ones redone.

        `labels`: 'auto' (LFW layout `Name/Name_0001.jpg`), 'parent' (folder name) or
        'none'. `sync=True` also forgets files under `paths` that no longer exist.
        Files that cannot be indexed are listed in the returned report and its log.
        `on_progress(done, total)` and `on_problem(problem)` follow the run (raise from
        either to stop it: what is written stays consistent); `workers` overrides the
        setting for this run.
        """
        settings = self.settings if workers is None else replace(self.settings,
                                                                 workers=workers)
        changed: list[str] = []
        result = run_ingest(paths, self.collection, settings, labels=labels, sync=sync,
                            report_path=report, on_progress=on_progress,
                            on_problem=on_problem, pipeline=self._pipeline, changed=changed)
        # New faces join persons (or form new ones) once the index has persons at all;
        # an index never grouped into persons pays nothing here.
        if changed and self.book.clustered():
            result.people = asdict(self.book.update(media=changed))
        return result

    def query(self, source: Source, *, colour: str = "bgr", name: str | None = None) -> Query:
        """Decode a photo or video once and find its faces (or face tracks), for any
        number of `search`, `embed`, `verify` calls without decoding or detecting again.

        `source`: a path (photo, video file or YouTube Faces frame folder), the bytes of
        a photo or video, or a uint8 array: BGR (H, W, 3) as OpenCV gives, (H, W)
        grayscale, or (H, W, 4) with alpha dropped. An RGB array (Pillow, imageio) needs
        `colour="rgb"`: the other order silently gives wrong vectors, so it cannot be
        the default guess. `name` is what results call the query. Use it as a context
        manager (or call `close()`): a video given as bytes lives in a temporary file.
        """
        query = load(source, self.settings, colour=colour, name=name)
        try:
            self._analyse(query)
        except BaseException:
            query.close()
            raise
        return query

    def faces(self, query: Query | Source) -> list[QueryFace] | list[QueryTrack]:
        """The faces found in a query image, left to right (`default` marks the largest),
        or the face tracks of a query video (`default` marks the most prominent)."""
        with self._as_query(query) as q:
            if q.kind == "video":
                return describe_tracks(self._tracks(q))
            return describe_faces(self._detected(q))

    def detect(self, query: Query | Source) -> list[QueryFace]:
        """The faces of a photo, left to right, each with its box (x, y, width, height),
        five landmarks and detector score; `default` marks the largest. [] if none.

        Detection only (no embedding): the cheap way to count or locate faces. The
        default detector (YuNet) finds faces from about 20 pixels wide, frontal to
        partly profile; `detector="dlib"` misses more.
        """
        with self._as_query(query) as q:
            self._require_photo(q, "detect")
            return describe_faces(self._detected(q))

    def embed(self, query: Query | Source, face: int | None = None) -> np.ndarray:
        """The embeddings of a photo's faces: one row per face, left to right (shape
        (n, dim), n = 0 without a face), or only face `face` (shape (1, dim)).

        Rows are unit vectors (the baseline pipeline gives raw features instead), so
        a dot product is the cosine similarity that `search` and `verify` report.
        Only vectors of the same embedding space (`stats()["pipeline"]`) compare.
        """
        with self._as_query(query) as q:
            self._require_photo(q, "embed")
            faces = self._detected(q)
            chosen = (range(len(faces)) if face is None
                      else select_faces(faces, face, query_name=q.name))
            if not chosen:
                return np.zeros((0, self.pipeline.dim), np.float32)
            return self.pipeline.embedder.embed(q.image, [faces[i] for i in chosen])

    def verify(self, a: Query | Source, b: Query | Source, *, face_a: int | None = None,
               face_b: int | None = None, far: float | None = None) -> Verification:
        """Whether photos `a` and `b` show the same person: the similarity of one face
        of each (the largest unless `face_a` / `face_b` say), and the decision against
        the calibrated threshold of the operating point `far` (default: the `far`
        setting); `decision` says which, and `match` is None when none is known.

        The threshold is set for a low false-match rate on LFW, so a "no match" between
        two poor photos of one person is more likely than a wrong "match". Raises
        NoFaceError when either photo shows no face.
        """
        chosen = []
        for source, face in ((a, face_a), (b, face_b)):
            with self._as_query(source) as q:
                self._require_photo(q, "verify")
                faces = self._detected(q)
                [i] = select_faces(faces, face, query_name=q.name)
                vector = self.pipeline.embedder.embed(q.image, [faces[i]])[0]
                chosen.append((q.name, describe_faces(faces)[i], vector))
        (name_a, desc_a, u), (name_b, desc_b, v) = chosen
        score = similarity(u, v, self.pipeline.metric)
        decision = self.decision(far)
        normalised = None
        if decision.score != "cosine":
            stats = self.cohort()
            normalised = round(float(asnorm(np.array([[score]]), stats.stats(u[None]),
                                            stats.stats(v[None]))[0, 0]), 5)
        judged = score if normalised is None else normalised
        return Verification(round(score, 5), decision.threshold,
                            None if decision.threshold is None else judged >= decision.threshold,
                            name_a, name_b, desc_a, desc_b, decision=decision,
                            score=normalised)

    def track(self, video: str | os.PathLike) -> VideoAnalysis:
        """Sample a video file or frame folder and follow every face through it."""
        return self.pipeline.track_video(video, self.settings.sampling,
                                         self.settings.max_pixels)

    def search(self, query: Query | Source, k: int = 10, *, face: int | None = None,
               all_faces: bool = False, track: int | None = None, all_tracks: bool = False,
               target: str = "all", include_query: bool = False,
               far: float | None = None, expand: bool | None = None) -> list[SearchResult]:
        """The k images and videos that best match the person of interest in `query`.

        `query` is a `Query` or anything `query()` takes: a photo (path, bytes or BGR
        array) or a video (a file or a YouTube Faces frame folder). Its person of
        interest is the largest face of a photo (`face=I` picks another, `all_faces`
        searches each) or the most prominent face track of a video (`track=I`,
        `all_tracks`). `target` limits the results to "images" or "videos"; "all"
        merges both by similarity.

        One `SearchResult` per searched face or track; its hits are grouped per image
        or video (its best face or track), best first, each with a cosine similarity,
        `match` against the calibrated threshold and, for videos, the time span where
        the person is seen. A query that is itself in the index is left out of its own
        results unless `include_query`. Raises NoFaceError when the query shows no face.

        Matches are decided at the operating point `far` (default: the `far` setting);
        each result's `decision` says at which FAR and threshold, and on which score
        (with the `norm` setting, hits carry the normalised `score` beside the cosine).

        `expand` (default: the `person_expansion` setting): a photo query face that
        belongs to a person is searched with the person's faces too, photos ranked by
        each hit's `expanded_score`; the result's `expanded` and `expanded_person_id`
        say when and with whom (revsearch.people.expand).
        """
        self.check()
        decision = self.decision(far)
        judge = Judge(decision, self._scorer() if decision.score != "cosine" else None)
        with self._as_query(query) as q:
            exclude = "" if include_query else q.digest
            if q.kind == "video":
                results = search_tracks(self.collection, self.pipeline, self._tracks(q),
                                        k=k, track=track, all_tracks=all_tracks,
                                        target=target, exclude_hash=exclude, judge=judge,
                                        query_name=q.name)
            else:
                results = search_faces(self.collection, self.pipeline, q.image, k=k,
                                       face=face, all_faces=all_faces, target=target,
                                       exclude_hash=exclude, judge=judge, query_name=q.name,
                                       detected=self._detected(q), matcher=self.matcher,
                                       max_pixels=self.settings.max_pixels,
                                       expand=self._expander(expand))
        annotate_persons(self.book, results)
        return results

    def _expander(self, expand: bool | None) -> Expander | None:
        """Person query expansion for this search, or None (off, or nothing to expand
        with)."""
        on = self.settings.person_expansion if expand is None else expand
        if not on or self.space.kind != "face" or not self.book.clustered():
            return None
        book = self.book

        def expander(vector: np.ndarray, k: int, target: str, exclude_hash: str
                     ) -> tuple[int, list[FaceHit]] | None:
            # Measured on photos only: a search that also ranks videos stays plain.
            if target == "videos" or (target == "all" and self.collection.holds("tracks")):
                log.info("person expansion skipped: it ranks photos only (target %s)", target)
                return None
            expansion = expand_query.place(book, vector)
            if expansion is None:
                return None
            return expansion.person_id, expand_query.rerank(book, vector, expansion, k,
                                                            exclude_hash)

        return expander

    # -- people ------------------------------------------------------------------------
    @property
    def book(self) -> PeopleBook:
        """The persons of this index (`revsearch.people`), with the method and threshold
        the settings name."""
        if self._book is None:
            self._book = PeopleBook(self.collection,
                                    self.settings.people_method or DEFAULT_METHOD,
                                    self.settings.people_threshold)
        return self._book

    def cluster(self, recluster: bool = False) -> ClusterReport:
        """Group faces and face tracks into persons: the first call clusters all of them,
        later ones place only what was added since (`recluster=True` redoes it from
        scratch, keeping ids, names and feedback where persons match)."""
        self.check()
        return self.book.recluster() if recluster else self.book.update()

    def people(self, *, recluster: bool = False, paths: bool = False) -> list[Person]:
        """Every person (a cluster of faces and face tracks), the largest first: its
        id, name, counts of faces and media, representative face; `paths` adds the
        paths of its photos and videos. Clusters first when needed (see `cluster`)."""
        self.cluster(recluster)
        return self.book.persons(with_paths=paths)

    def person(self, ref: int | str) -> Person:
        """One person by id or name, with each face and track (most typical first).
        Raises NotFoundError for an unknown id or name."""
        return self.book.person(ref)

    def name_person(self, ref: int | str, name: str) -> Person:
        """Name a person; the name survives new photos and re-clustering."""
        return self.book.name(ref, name)

    def merge_people(self, into: int | str, other: int | str) -> Person:
        """Merge person `other` into `into` (remembered through re-clustering)."""
        return self.book.merge(into, other)

    def remove_face(self, item_id: str) -> Person:
        """"Not this person": move a face (a `face_id`, or a track's `<video_id>_NNNN`)
        out of its person into one of its own, and keep it apart from that person
        through re-clustering. Returns the face's new person."""
        return self.book.remove_item(item_id)

    def search_person(self, ref: int | str, k: int | None = None,
                      target: str = "all") -> PersonSearch:
        """The photos and videos of a named (or numbered) person, most typical first:
        each with the person's face in it (or track) and its similarity to the
        person's mean."""
        return person_media(self.book, ref, k, target)

    # -- the collection --------------------------------------------------------------
    def media(self, offset: int = 0, limit: int = 50, label: str = "") -> list[MediaItem]:
        """A page of indexed files (photos and videos, with or without faces), optionally
        those whose label contains `label` (letters, digits, spaces, '_', '-').

        The order is the database's, stable while nothing is added; paging a large
        index this way costs more the further the offset.
        """
        return list_media(self.collection, offset, limit, label)

    def get(self, media_id: str) -> MediaItem:
        """An indexed file by id (a hit's `image_id`) with its stored faces or face
        tracks. Raises NotFoundError (a KeyError) for an unknown id."""
        return get_media(self.collection, media_id)

    def remove(self, paths: Sequence[str | os.PathLike]) -> int:
        """Forget indexed files, frame folders, and everything indexed under folders;
        the files themselves are left alone and need not exist any more.

        Returns the rows deleted: each file's faces or track descriptors and the file's
        own row. A path given as a folder reads every indexed row once (a full scan).
        `index(paths, sync=True)` forgets only files that are gone; this forgets all.
        """
        roots = [Path(p).expanduser().resolve() for p in paths]
        gone: dict[str, dict] = {}
        for root in roots:  # a file: one lookup, no scan
            row = self.collection.get_media(image_id_for(str(root)))
            if row is not None:
                gone[row["image_id"]] = row
        folders = [r for r in roots if image_id_for(str(r)) not in gone]
        if folders:
            for row in self.collection.media():
                if any(root in Path(row["path"]).parents for root in folders):
                    gone[row["image_id"]] = row
        self.collection.remove(list(gone))
        if gone and self.book.clustered():
            self.book.update(media=list(gone))  # the removed faces leave their persons
        return sum(int(row["n_faces"]) + 1 for row in gone.values())

    def check(self) -> None:
        """Refuse to answer from a damaged index (once per open index: the check counts
        rows, which costs a few hundred milliseconds on a large Milvus Lite file)."""
        if not self._checked:
            self.collection.check()
            self._checked = True

    def threshold(self) -> float | None:
        """The match threshold of the `far` setting's operating point (see `decision`)."""
        return self.decision().threshold

    def calibration(self) -> Calibration | None:
        """The space's stored calibration (read once), if fitted with its model files."""
        if self._calibration is None:
            found = self.space.calibration(self.settings.home)
            if found is None and self.space.decides:
                log.warning("no calibration for %s: run `revsearch calibrate --space %s` or "
                            "pass --threshold; results carry no match decision",
                            self.space.key, self.space.name)
            self._calibration = (found,)
        return self._calibration[0]

    def decision(self, far: float | None = None) -> Decision:
        """How matches are decided: the calibrated threshold at the operating point `far`
        (default: the `far` setting), on the cosine or, with the `norm` setting and a
        calibration fitted with it, on the normalised score; or why there is no decision.
        A `threshold` setting overrides the calibration (on the score in use)."""
        if far is not None and not any(abs(far - f) <= 1e-9 * f for f in FARS):
            raise ValueError(f"far {far:g} is not an operating point; choose from "
                             f"{', '.join(f'{f:g}' for f in FARS)}")
        return decide(self.space, self.calibration(), self.settings,
                      self.settings.far if far is None else far, self._cohort_usable)

    def cohort(self) -> Cohort:
        """The normalisation cohort: a sample of this collection's faces, taken once per
        open index (new faces indexed meanwhile join it when the index is reopened)."""
        if self._cohort is None:
            cal = self.calibration()
            params = NormParams.from_dict(cal.norm) if cal and cal.norm else NormParams()
            rows = (np.asarray(r["embedding"], np.float32)
                    for r in self.collection.all_faces(with_embeddings=True))
            self._cohort = Cohort.sample(rows, params)
            log.info("normalisation cohort: %d faces of %s", len(self._cohort), self.space.key)
        return self._cohort

    def _cohort_usable(self) -> tuple[bool, str]:
        cohort = self.cohort()
        if cohort.usable:
            return True, ""
        return False, (f"{self.settings.norm} needs at least {2 * cohort.top_k} indexed "
                       f"faces as its cohort, and this index holds {len(cohort)}")

    def _scorer(self) -> Scorer:
        """Normalised scores of a query's hits against the cohort (`Judge`)."""
        cohort = self.cohort()

        def score(vectors: np.ndarray, hits: list[FaceHit]) -> np.ndarray:
            stored = self.collection.embeddings(hits)
            mean_q, std_q = cohort.stats(vectors)
            query_stats = (np.array([mean_q.mean()]), np.array([std_q.mean()]))
            raw = np.array([[h.similarity for h in hits]])
            return asnorm(raw, query_stats, cohort.stats(stored))[0]

        return score

    def stats(self) -> dict:
        counts = self.collection.count()
        return {"db": self.settings.db_uri, "backend": "lite" if self.store.is_lite else "server",
                "pipeline": self.space.key,
                "detector": self.space.detector_name(self.settings),
                "threshold": self.threshold(), "far": self.decision().far,
                "norm": self.settings.norm, **counts}

    @contextmanager
    def _as_query(self, source: Query | Source) -> Iterator[Query]:
        """The query itself, or one made (and closed afterwards) from anything else."""
        if isinstance(source, Query):
            yield source
            return
        with self.query(source) as query:
            yield query

    def _analyse(self, query: Query) -> None:
        if query.kind == "video":
            query.analysis = self.track(query.video)
        else:
            query.detected = self.pipeline.detect_query(query.image)
        query.pipeline = self.pipeline

    def _detected(self, query: Query) -> list[Face]:
        """The query's faces as this index's detector sees them (another index's
        pipeline, e.g. the baseline's whole image, finds other "faces")."""
        if query.pipeline is self.pipeline:
            return query.detected
        return self.pipeline.detect_query(query.image)

    def _tracks(self, query: Query) -> list[Track]:
        if query.pipeline is self.pipeline and query.analysis is not None:
            return query.analysis.tracks
        return self.track(query.video).tracks

    @staticmethod
    def _require_photo(query: Query, verb: str) -> None:
        if query.kind != "image":
            raise MediaError(f"{verb} takes a photo, and {query.name} is a video: "
                             f"`faces` lists its face tracks, `search` finds them")


def decide(space: Space, calibration: Calibration | None, settings: Settings, far: float,
           cohort_usable=lambda: (True, "")) -> Decision:
    """The `Decision` for `space` at the operating point `far` (see `RevSearch.decision`)."""
    scored, fallback = ("cosine" if settings.norm == "none" else settings.norm), ""
    if scored != "cosine":
        usable, why = cohort_usable()
        if not usable:
            scored, fallback = "cosine", f"{why}: decided on the cosine"
    if settings.threshold is not None:
        return Decision(None, settings.threshold, scored, "the threshold setting",
                        "a threshold set by hand: its false-accept rate is not known")
    if not space.decides:
        return Decision(None, None, "cosine" if space.metric != "L2" else "minus L2",
                        note=f"{space.key} only ranks: no match decision")
    if calibration is None:
        return Decision(None, None, "cosine", note=(
            f"{space.key} is not calibrated: no match decision (run `revsearch calibrate "
            f"--space {space.name}`, on LFW or on your own folders with --folders)"))
    point = calibration.point(far)
    if point is None:
        have = ", ".join(f"{f:g}" for f in calibration.fars)
        return Decision(None, None, "cosine", calibration.source, note=(
            f"the calibration of {space.key} has no operating point at FAR {far:g} "
            f"(it has {have}): no match decision"))
    if scored != "cosine" and point.norm_threshold is None:
        scored, fallback = "cosine", (f"the calibration of {space.key} was fitted without "
                                      f"{settings.norm}: decided on the cosine")
    normalised = scored != "cosine"
    return Decision(far, point.threshold_for("photo", normalised), scored, calibration.source,
                    fallback, {} if normalised else dict(point.by_kind))


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
    from revsearch.store.people import PeopleCollections, copy_people

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
            # The persons, names and feedback of the people view, when it was used.
            people = copy_people(PeopleCollections(src, key, s.dim),
                                 PeopleCollections(dst, key, s.dim))
            copied[key]["persons"] = people["persons"]
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


def search(query: Query | Source, db: str | None = None, k: int = 10, *, face: int | None = None,
           all_faces: bool = False, track: int | None = None, all_tracks: bool = False,
           target: str = "all", **settings: object) -> list[SearchResult]:
    """Open the index, search it (see `RevSearch.search`), close it."""
    with connect(db, **settings) as rs:
        return rs.search(query, k, face=face, all_faces=all_faces, track=track,
                         all_tracks=all_tracks, target=target)


__all__ = ["Query", "RevSearch", "RevsearchError", "connect", "index", "migrate", "search"]
