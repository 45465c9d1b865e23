"""The vector store: faces and indexed-image bookkeeping in Milvus.

`connect(uri)` picks the backend from the URI: a path ending in `.db` is an embedded
Milvus Lite database (one process at a time), `http(s)://host:port` a Milvus server.
The same `MilvusClient` code serves both.

Two collections per embedding space (`key`, e.g. `sface`), so vectors of different
models are never compared:

- `faces_<key>`: one row per face: ids, path, content hash, box, landmarks, score,
  label and the unit-length embedding (COSINE).
- `tracks_<key>`: one row per descriptor of a face track in a video: ids, path, track
  number, time span, the thumbnail frame and box, label and the descriptor (a track
  has one, or several with the `prototypes` aggregation).
- `images_<key>`: one row per ingested image or video, written *after* its faces or
  tracks (`n_faces` counts those rows). It is the commit marker that makes ingest
  resumable: a file without one is processed again, and its stale or partial rows are
  deleted first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from revsearch.errors import DatabaseError, DatabaseLockedError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_PATH = 4096
RECOVERY = ("Recovery: run `revsearch index` again on the same folders (it re-indexes what "
            "is missing), or move the database aside and re-index from the images.")


@dataclass
class FaceRow:
    """One stored face."""

    face_id: str
    image_id: str
    path: str
    content_hash: str
    face_index: int
    box: list[float]
    landmarks: list[float]
    score: float
    label: str
    embedding: np.ndarray
    media_type: str = "image"


@dataclass
class TrackRow:
    """One stored descriptor of a face track (a video's `n_faces` counts these rows)."""

    row_id: str
    video_id: str
    path: str
    content_hash: str
    track_index: int
    proto_index: int
    n_frames: int
    start: float  # seconds
    end: float
    frame: int  # the thumbnail frame: the track's best-quality detection
    box: list[float]  # the face in that frame
    score: float  # that detection's quality
    label: str
    embedding: np.ndarray


@dataclass
class ImageRow:
    """One ingested file (present even when it holds no face)."""

    image_id: str
    path: str
    content_hash: str
    size: int
    mtime_ns: int
    width: int
    height: int
    n_faces: int
    label: str = ""
    media_type: str = "image"


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


FACE_FIELDS = [f.name for f in dataclasses.fields(FaceRow)]
TRACK_FIELDS = [f.name for f in dataclasses.fields(TrackRow)]
IMAGE_FIELDS = [f.name for f in dataclasses.fields(ImageRow)]


def image_id_for(path: str) -> str:
    return hashlib.blake2b(path.encode("utf-8"), digest_size=16).hexdigest()


def face_id_for(image_id: str, index: int) -> str:
    return f"{image_id}_{index:04d}"


def track_row_id(video_id: str, track: int, proto: int) -> str:
    return f"{video_id}_{track:04d}_{proto:02d}"


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


def _lite_lock_check(path: Path) -> None:
    """Fail clearly when another process holds this Milvus Lite database."""
    from milvus_lite.server_manager import server_manager_instance

    if str(path.resolve()) in server_manager_instance._servers:
        return  # this process already has it open
    lock = path / "LOCK"
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        raise DatabaseLockedError(
            f"the database {path} is in use by another process (a running `revsearch "
            f"index` or `serve`?). Milvus Lite allows one process per database: wait for "
            f"it to finish, or use a Milvus server with --db http://HOST:19530."
        ) from None
    finally:
        os.close(fd)


class Store:
    """A Milvus database holding the faces of one or more embedding spaces."""

    def __init__(self, uri: str) -> None:
        from pymilvus import MilvusClient

        self.uri = uri
        self.is_lite = not is_server_uri(uri)
        self._lite_path: Path | None = None
        if self.is_lite:
            path = Path(uri).expanduser()
            if path.suffix != ".db":
                raise DatabaseError(f"a Milvus Lite database path must end in .db: {uri}")
            path.parent.mkdir(parents=True, exist_ok=True)
            _lite_lock_check(path)
            self._lite_path = path.resolve()
            uri = str(self._lite_path)
        try:
            self.client = MilvusClient(uri=uri)
        except Exception as exc:
            if self.is_lite:
                _lite_lock_check(Path(uri))
            raise DatabaseError(f"cannot open the database {self.uri}: {exc}") from exc
        self.version = self._server_version()
        # Milvus 2.4 added search grouping and the INVERTED scalar index.
        self.modern = self.is_lite or self.version >= (2, 4)

    def _server_version(self) -> tuple[int, int]:
        if self.is_lite:
            return (99, 0)
        try:
            text = str(self.client.get_server_version()).lstrip("v")
            major, minor = (int(p) for p in text.split(".")[:2])
            return (major, minor)
        except Exception:  # unknown: assume an old server, which costs only speed
            return (2, 0)

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self._lite_path is not None:
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(str(self._lite_path))
            self._lite_path = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema --------------------------------------------------------------------
    def faces(self, key: str, dim: int, metric: str = "COSINE",
              index_params: dict | None = None, search_ef: int | None = None) -> FaceCollection:
        """The face collection of embedding space `key`, created on first use."""
        return FaceCollection(self, key, dim, metric, index_params, search_ef)

    def list_spaces(self) -> list[str]:
        return sorted(n[len("faces_"):] for n in self.client.list_collections()
                      if n.startswith("faces_"))

    def open_space(self, key: str) -> FaceCollection:
        """An existing space, with the dimension and metric it was created with."""
        desc = self.client.describe_collection(f"faces_{key}")
        dim = next(int(f["params"]["dim"]) for f in desc["fields"] if f["name"] == "embedding")
        index = self.client.describe_index(f"faces_{key}", "embedding")
        return FaceCollection(self, key, dim, index.get("metric_type", "COSINE"))


class FaceCollection:
    """Faces and images of one embedding space; the only place that speaks Milvus schema."""

    def __init__(self, store: Store, key: str, dim: int, metric: str = "COSINE",
                 index_params: dict | None = None, search_ef: int | None = None) -> None:
        self.store, self.key, self.dim = store, key, dim
        self.metric, self.index_params, self.search_ef = metric, index_params, search_ef
        self.client = store.client
        self._non_empty: set[str] = set()
        self.faces_name = f"faces_{key}"
        self.tracks_name = f"tracks_{key}"
        self.images_name = f"images_{key}"
        with database_errors(store.uri):
            self._ensure()

    def _ensure(self) -> None:
        client = self.client
        if client.has_collection(self.faces_name):
            self._check_dim()
        else:
            self._create_faces()
        if not client.has_collection(self.tracks_name):
            self._create_tracks()  # also upgrades a database made before video support
        if not client.has_collection(self.images_name):
            self._create_images()
        for name in self._names:
            client.load_collection(name)

    @property
    def _names(self) -> tuple[str, str, str]:
        return (self.faces_name, self.tracks_name, self.images_name)

    def _check_dim(self) -> None:
        desc = self.client.describe_collection(self.faces_name)
        for f in desc.get("fields", []):
            if f.get("name") == "embedding":
                dim = int(f.get("params", {}).get("dim", self.dim))
                if dim != self.dim:
                    raise DatabaseError(
                        f"collection {self.faces_name} holds {dim}-d vectors but the "
                        f"embedder gives {self.dim}-d; use another --db or re-index"
                    )

    def _create_faces(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                            description=json.dumps({"schema": SCHEMA_VERSION}))
        schema.add_field("face_id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("image_id", DataType.VARCHAR, max_length=32)
        schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("content_hash", DataType.VARCHAR, max_length=32)
        schema.add_field("media_type", DataType.VARCHAR, max_length=16)
        schema.add_field("face_index", DataType.INT32)
        schema.add_field("box", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=4)
        schema.add_field("landmarks", DataType.ARRAY, element_type=DataType.FLOAT,
                         max_capacity=10)
        schema.add_field("score", DataType.FLOAT)
        schema.add_field("label", DataType.VARCHAR, max_length=512)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        self._create_vector_collection(self.faces_name, schema, group_field="image_id")

    def _create_tracks(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("row_id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("video_id", DataType.VARCHAR, max_length=32)
        schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("content_hash", DataType.VARCHAR, max_length=32)
        schema.add_field("track_index", DataType.INT32)
        schema.add_field("proto_index", DataType.INT32)
        schema.add_field("n_frames", DataType.INT32)
        schema.add_field("start", DataType.FLOAT)
        schema.add_field("end", DataType.FLOAT)
        schema.add_field("frame", DataType.INT64)
        schema.add_field("box", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=4)
        schema.add_field("score", DataType.FLOAT)
        schema.add_field("label", DataType.VARCHAR, max_length=512)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        self._create_vector_collection(self.tracks_name, schema, group_field="video_id")

    def _create_vector_collection(self, name: str, schema, group_field: str) -> None:
        """Create a collection whose `embedding` is searched and grouped by `group_field`."""
        index = self.client.prepare_index_params()
        index.add_index(field_name="embedding", metric_type=self.metric,
                        **(self.index_params or self._vector_index()))
        if self.store.modern:
            index.add_index(field_name=group_field, index_type="INVERTED")
        self.client.create_collection(name, schema=schema, index_params=index,
                                      consistency_level="Strong")

    def _vector_index(self) -> dict:
        # Exact search on Milvus Lite: its HNSW can miss hits under a filter, and at the
        # sizes Lite is for, brute force over 128-d vectors is a few milliseconds.
        if self.store.is_lite:
            return {"index_type": "FLAT"}
        return hnsw_index()

    def _create_images(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("image_id", DataType.VARCHAR, is_primary=True, max_length=32)
        schema.add_field("path", DataType.VARCHAR, max_length=MAX_PATH)
        schema.add_field("content_hash", DataType.VARCHAR, max_length=32)
        schema.add_field("media_type", DataType.VARCHAR, max_length=16)
        schema.add_field("size", DataType.INT64)
        schema.add_field("mtime_ns", DataType.INT64)
        schema.add_field("width", DataType.INT32)
        schema.add_field("height", DataType.INT32)
        schema.add_field("n_faces", DataType.INT32)
        schema.add_field("label", DataType.VARCHAR, max_length=512)
        # Milvus requires a vector field in every collection; this one carries nothing.
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
        index = self.client.prepare_index_params()
        index.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
        self.client.create_collection(self.images_name, schema=schema, index_params=index,
                                      consistency_level="Strong")

    # -- writes --------------------------------------------------------------------
    def write(self, images: Sequence[ImageRow], faces: Sequence[FaceRow],
              replace: Sequence[str] | None = None, tracks: Sequence[TrackRow] = ()) -> None:
        """Replace the faces (and tracks) of these images and videos, then mark them
        as indexed.

        The order makes a killed write harmless: an image row exists only once all of
        its faces do, and a re-run deletes leftovers of an unmarked image first.
        `replace` names the images that may have face rows already (default: all).
        """
        if not images:
            return
        self._delete_faces([im.image_id for im in images] if replace is None else replace)
        if faces:
            self.client.insert(self.faces_name, [self._face_dict(f) for f in faces])
        if tracks:
            self.client.insert(self.tracks_name, [self._track_dict(t) for t in tracks])
        self.client.upsert(self.images_name, [self._image_dict(im) for im in images])

    def touch(self, images: Sequence[ImageRow]) -> None:
        """Record a new size/mtime for files whose content did not change."""
        if images:
            self.client.upsert(self.images_name, [self._image_dict(im) for im in images])

    def remove(self, image_ids: Sequence[str]) -> None:
        """Forget these images and their faces (marker first: a half-done removal is
        finished by the next `--sync`, never leaves faces of a file marked as gone)."""
        for chunk in _chunks(list(image_ids), 500):
            self.client.delete(self.images_name, filter=_in_filter("image_id", chunk))
            self.client.delete(self.faces_name, filter=_in_filter("image_id", chunk))
            self.client.delete(self.tracks_name, filter=_in_filter("video_id", chunk))

    def _delete_faces(self, image_ids: Sequence[str]) -> None:
        # Look first: new images (the common case) have nothing to delete, and every
        # delete leaves a tombstone that searches must filter until compaction.
        for chunk in _chunks(list(image_ids), 500):
            stale = self._query(self.faces_name, filter=_in_filter("image_id", chunk),
                                output_fields=["face_id"])
            if stale:
                self.client.delete(self.faces_name, ids=[r["face_id"] for r in stale])
            stale = self._query(self.tracks_name, filter=_in_filter("video_id", chunk),
                                output_fields=["row_id"])
            if stale:
                self.client.delete(self.tracks_name, ids=[r["row_id"] for r in stale])

    def flush(self) -> None:
        """Seal what was written so searches read few, large segments (Milvus Lite
        searches each segment in turn: hundreds of small ones cost 10x)."""
        for name in self._names:
            self.client.flush(name)

    @staticmethod
    def _face_dict(f: FaceRow) -> dict:
        return {
            "face_id": f.face_id, "image_id": f.image_id, "path": f.path,
            "content_hash": f.content_hash, "media_type": f.media_type,
            "face_index": int(f.face_index), "box": [float(v) for v in f.box],
            "landmarks": [float(v) for v in f.landmarks], "score": float(f.score),
            "label": f.label, "embedding": np.asarray(f.embedding, dtype=np.float32).tolist(),
        }

    @staticmethod
    def _track_dict(t: TrackRow) -> dict:
        return {
            "row_id": t.row_id, "video_id": t.video_id, "path": t.path,
            "content_hash": t.content_hash, "track_index": int(t.track_index),
            "proto_index": int(t.proto_index), "n_frames": int(t.n_frames),
            "start": float(t.start), "end": float(t.end), "frame": int(t.frame),
            "box": [float(v) for v in t.box], "score": float(t.score), "label": t.label,
            "embedding": np.asarray(t.embedding, dtype=np.float32).tolist(),
        }

    @staticmethod
    def _image_dict(im: ImageRow) -> dict:
        return {
            "image_id": im.image_id, "path": im.path, "content_hash": im.content_hash,
            "media_type": im.media_type, "size": int(im.size), "mtime_ns": int(im.mtime_ns),
            "width": int(im.width), "height": int(im.height), "n_faces": int(im.n_faces),
            "label": im.label, "unused": [0.0, 0.0],
        }

    # -- reads ---------------------------------------------------------------------
    def images(self) -> Iterator[dict]:
        """Every image row, with exactly the fields of `ImageRow`."""
        yield from self._iterate(self.images_name, IMAGE_FIELDS)

    def all_faces(self, with_embeddings: bool = False) -> Iterator[dict]:
        fields = [f for f in FACE_FIELDS if with_embeddings or f != "embedding"]
        yield from self._iterate(self.faces_name, fields)

    def all_tracks(self, with_embeddings: bool = False) -> Iterator[dict]:
        fields = [f for f in TRACK_FIELDS if with_embeddings or f != "embedding"]
        yield from self._iterate(self.tracks_name, fields)

    def _query(self, collection: str, **kwargs) -> list:
        return self.client.query(collection, **_READ, **kwargs)

    def _get(self, collection: str, **kwargs) -> list:
        return self.client.get(collection, **_READ, **kwargs)

    def _iterate(self, collection: str, fields: list[str]) -> Iterator[dict]:
        iterator = self.client.query_iterator(collection, batch_size=2000, output_fields=fields)
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    def get_image(self, image_id: str) -> dict | None:
        rows = self._get(self.images_name, ids=[image_id],
                         output_fields=["image_id", "path", "content_hash", "n_faces",
                                        "label", "width", "height", "media_type"])
        return dict(rows[0]) if rows else None

    def get_face(self, face_id: str) -> dict | None:
        rows = self._get(self.faces_name, ids=[face_id],
                         output_fields=["image_id", "path", "face_index", "box", "label"])
        return dict(rows[0]) if rows else None

    def get_track(self, video_id: str, track_index: int) -> dict | None:
        """A track's first descriptor row (time span, thumbnail frame and box)."""
        rows = self._get(self.tracks_name, ids=[track_row_id(video_id, track_index, 0)],
                         output_fields=["video_id", "path", "track_index", "start",
                                        "end", "frame", "box", "label"])
        return dict(rows[0]) if rows else None

    def list_images(self, offset: int = 0, limit: int = 50, label: str = "") -> list[dict]:
        """A page of indexed files, optionally those whose label contains `label`
        (letters, digits, space, '_' and '-' only: the text goes into a filter)."""
        if label and not all(c.isalnum() or c in " _-" for c in label):
            raise ValueError("label filter: letters, digits, spaces, '_' and '-' only")
        where = f'label like "%{label}%"' if label else ""
        rows = self._query(self.images_name, filter=where, offset=offset, limit=limit,
                           output_fields=["image_id", "path", "label", "media_type",
                                          "n_faces", "width", "height"])
        return [dict(r) for r in rows]

    def consistent(self, images: Iterable[dict]) -> bool:
        """True when every face and track row belongs to a marked image or video (no
        interrupted write)."""
        counts = self.count()
        return counts["faces"] + counts["tracks"] == sum(int(r["n_faces"]) for r in images)

    def face_counts(self) -> dict[str, int]:
        """Stored face (or track) rows per image (or video) id: a full scan, for repairs."""
        counts: dict[str, int] = {}
        for row in self._iterate(self.faces_name, ["image_id"]):
            counts[row["image_id"]] = counts.get(row["image_id"], 0) + 1
        for row in self._iterate(self.tracks_name, ["video_id"]):
            counts[row["video_id"]] = counts.get(row["video_id"], 0) + 1
        return counts

    def check(self) -> None:
        """Cheap guard against answering from a damaged index: every image that has faces
        needs at least one face row. Raises DatabaseError with the recovery step."""
        with database_errors(self.store.uri):
            counts = self.count()
            faces = counts["faces"] + counts["tracks"]
            with_faces = self._query(self.images_name, filter="n_faces > 0",
                                     output_fields=["count(*)"])[0]["count(*)"]
        if faces < int(with_faces):
            raise DatabaseError(
                f"the index in {self.store.uri} is damaged or incomplete: {with_faces} images "
                f"have faces but only {faces} face and track rows exist. {RECOVERY}")

    def count(self) -> dict[str, int]:
        """Rows: faces, tracks, images (files of any kind) and videos among them."""
        def rows(name: str, where: str = "") -> int:
            found = self._query(name, filter=where, output_fields=["count(*)"])
            return int(found[0]["count(*)"])

        return {"faces": rows(self.faces_name), "tracks": rows(self.tracks_name),
                "images": rows(self.images_name, 'media_type == "image"'),
                "videos": rows(self.images_name, 'media_type == "video"')}

    def search(self, vectors: np.ndarray, k: int, exclude_hash: str = "",
               per_image: bool = True) -> list[list[FaceHit]]:
        """For each query vector, the k best images (their best face each), best first."""
        with database_errors(self.store.uri):
            return self._search(_FACES, vectors, k, exclude_hash, per_image)

    def holds(self, kind: str) -> bool:
        """Whether the "faces" or "tracks" collection has rows: a photo-only index need
        not pay a track search per query. Cheap (collection statistics); once seen
        non-empty, not asked again."""
        if kind in self._non_empty:
            return True
        name = self.faces_name if kind == "faces" else self.tracks_name
        with database_errors(self.store.uri):
            rows = int(self.client.get_collection_stats(name).get("row_count", 0))
        if rows:
            self._non_empty.add(kind)
        return bool(rows)

    def search_tracks(self, vectors: np.ndarray, k: int,
                      exclude_hash: str = "") -> list[list[FaceHit]]:
        """For each query vector, the k best videos (their best track descriptor each)."""
        with database_errors(self.store.uri):
            return self._search(_TRACKS, vectors, k, exclude_hash, True)

    def _search(self, kind: _Kind, vectors: np.ndarray, k: int, exclude_hash: str,
                grouped: bool) -> list[list[FaceHit]]:
        if grouped and not self.store.modern:
            return [self._search_grouped_client_side(kind, v, k, exclude_hash)
                    for v in vectors]
        kwargs = {"group_by_field": kind.group} if grouped else {}
        result = self._raw_search(kind, vectors, k, exclude_hash, **kwargs)
        return [[kind.hit(h, self.metric) for h in hits] for hits in result]

    def _raw_search(self, kind: _Kind, vectors: np.ndarray, limit: int, exclude_hash: str,
                    **kwargs):
        params: dict = {"metric_type": self.metric}
        if self.search_ef:
            params["params"] = {"ef": max(self.search_ef, limit)}
        elif not self.store.is_lite:
            params["params"] = {"ef": max(64, 2 * limit)}
        if exclude_hash:
            kwargs["filter"] = f'content_hash != "{exclude_hash}"'
        return self.client.search(
            getattr(self, kind.collection), **_READ,
            data=[np.asarray(v, dtype=np.float32).tolist() for v in vectors],
            limit=limit, search_params=params, output_fields=list(kind.fields), **kwargs,
        )

    def _search_grouped_client_side(self, kind: _Kind, vector: np.ndarray, k: int,
                                    exclude_hash: str) -> list[FaceHit]:
        """Servers before 2.4 cannot group: fetch more rows until k images are found."""
        limit = max(4 * k, 64)
        while True:
            limit = min(limit, 16384)  # Milvus's cap on limit
            rows = [kind.hit(h, self.metric)
                    for h in self._raw_search(kind, vector[None], limit, exclude_hash)[0]]
            best: dict[str, FaceHit] = {}
            for hit in rows:  # best first, so the first row seen per image wins
                best.setdefault(hit.image_id, hit)
            if len(best) >= k or len(rows) < limit or limit == 16384:
                return list(best.values())[:k]
            limit *= 4


def hnsw_index(m: int = 16, ef_construction: int = 200) -> dict:
    """Index parameters of a server face collection (config.Settings.hnsw_*)."""
    return {"index_type": "HNSW", "params": {"M": m, "efConstruction": ef_construction}}


# Reads see this client's own writes (an ingest's checks, a search right after an index
# call) without Strong consistency's wait for the server's next time tick: on a Milvus
# server, Strong made every search and lookup take ~200 ms (bench/bench_lfw.py --server).
# Milvus Lite answers at once either way.
_READ = {"consistency_level": "Session"}


def _similarity(distance: float, metric: str) -> float:
    # Higher is better everywhere: cosine as is; L2 (Milvus gives it squared) negated.
    return distance if metric != "L2" else -float(np.sqrt(max(distance, 0.0)))


def _face_hit(h: dict, metric: str) -> FaceHit:
    e = h["entity"]
    return FaceHit(
        face_id=str(h.get("id", h.get("face_id"))), image_id=e["image_id"], path=e["path"],
        face_index=int(e["face_index"]), box=[float(v) for v in e["box"]],
        similarity=_similarity(float(h["distance"]), metric), label=e.get("label", ""),
    )


def _track_hit(h: dict, metric: str) -> FaceHit:
    e = h["entity"]
    return FaceHit(
        face_id=str(h.get("id", h.get("row_id"))), image_id=e["video_id"], path=e["path"],
        face_index=int(e["track_index"]), box=[float(v) for v in e["box"]],
        similarity=_similarity(float(h["distance"]), metric), label=e.get("label", ""),
        extra={"start": round(float(e["start"]), 3), "end": round(float(e["end"]), 3),
               "frame": int(e["frame"])},
        media_type="video",
    )


@dataclass(frozen=True)
class _Kind:
    """What differs between searching faces (per image) and tracks (per video)."""

    collection: str  # attribute of FaceCollection holding the collection's name
    group: str
    fields: tuple[str, ...]
    hit: Callable[[dict, str], FaceHit]


_FACES = _Kind("faces_name", "image_id", ("image_id", "path", "face_index", "box", "label"),
               _face_hit)
_TRACKS = _Kind("tracks_name", "video_id", ("video_id", "path", "track_index", "box", "label",
                                             "start", "end", "frame"), _track_hit)


@contextlib.contextmanager
def database_errors(uri: str) -> Iterator[None]:
    """Turn the database's own failures (unreadable files, lost server) into one clear
    DatabaseError that says how to recover."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as exc:
        reason = str(getattr(exc, "message", "") or exc).splitlines()[0][:300]
        raise DatabaseError(f"the database {uri} failed: {reason}. {RECOVERY}") from exc


def copy_space(src: FaceCollection, dst: FaceCollection, batch: int = 1000) -> dict[str, int]:
    """Copy every face, track and image row of one space, streaming; images last, as
    ingest does."""
    counts = {"faces": 0, "images": 0}
    for chunk in _chunks(src.all_faces(with_embeddings=True), batch):
        dst.client.upsert(dst.faces_name, [dst._face_dict(FaceRow(**r)) for r in chunk])
        counts["faces"] += len(chunk)
    counts["tracks"] = 0
    for chunk in _chunks(src.all_tracks(with_embeddings=True), batch):
        dst.client.upsert(dst.tracks_name, [dst._track_dict(TrackRow(**r)) for r in chunk])
        counts["tracks"] += len(chunk)
    for chunk in _chunks(src.images(), batch):
        dst.client.upsert(dst.images_name, [dst._image_dict(ImageRow(**r)) for r in chunk])
        counts["images"] += len(chunk)
    dst.flush()
    return counts


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _in_filter(field_name: str, values: Sequence[str]) -> str:
    # Values are hex digests made here, never user text, so quoting is safe.
    return f"{field_name} in {json.dumps(list(values))}"

