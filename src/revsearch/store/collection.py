"""One embedding space's faces, tracks and media in Milvus: writes, integrity, reads.

Writes put a file's media row (its commit marker) in last: a media row exists only once
all of its face or track rows do, so a killed ingest leaves at worst unmarked rows, which
the next run deletes before writing the file again (see `revsearch.store.schema`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from revsearch.errors import DatabaseError
from revsearch.store.backend import READ, RECOVERY, database_errors
from revsearch.store.schema import (
    FACES,
    MEDIA,
    TRACKS,
    FaceRow,
    MediaRow,
    Table,
    TrackRow,
    track_row_id,
)
from revsearch.store.search import (
    FACE_SEARCH,
    TRACK_SEARCH,
    FaceHit,
    Kind,
    Searcher,
    similarity_of,
)

if TYPE_CHECKING:
    from revsearch.store.database import Store


class SpaceCollections:
    """The faces, tracks and media collections of one embedding space (created on first
    use), and every read and write of their rows."""

    def __init__(self, store: Store, key: str, dim: int, metric: str = "COSINE",
                 index_params: dict | None = None, search_ef: int | None = None) -> None:
        self.store, self.key, self.dim = store, key, dim
        self.metric, self.index_params, self.search_ef = metric, index_params, search_ef
        self.client = store.client
        self._non_empty: set[str] = set()
        self.faces_name = FACES.name(key)
        self.tracks_name = TRACKS.name(key)
        self.media_name = MEDIA.name(key)
        with database_errors(store.uri):
            self._ensure()

    # -- collections ---------------------------------------------------------------
    @property
    def _names(self) -> tuple[str, str, str]:
        return (self.faces_name, self.tracks_name, self.media_name)

    def _ensure(self) -> None:
        if self.client.has_collection(self.faces_name):
            self._check_dim()
        # Creating a missing tracks collection also upgrades a database made before
        # video support.
        for table, name in zip((FACES, TRACKS, MEDIA), self._names, strict=True):
            if not self.client.has_collection(name):
                self._create(table, name)
        for name in self._names:
            self.client.load_collection(name)

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

    def _create(self, table: Table, name: str) -> None:
        index = self.client.prepare_index_params()
        if table.group:  # searched: the space's metric and index, grouped by `group`
            backend = self.store.backend
            index.add_index(field_name=table.vector, metric_type=self.metric,
                            **(self.index_params or backend.vector_index()))
            group_index = backend.group_index()
            if group_index:
                index.add_index(field_name=table.group, **group_index)
        else:  # the filler vector, never searched
            index.add_index(field_name=table.vector, index_type="FLAT", metric_type="L2")
        self.client.create_collection(name, schema=table.schema(self.dim),
                                      consistency_level="Strong")
        self.client.create_index(name, index, sync=self.store.backend.index_wait)

    # -- writes --------------------------------------------------------------------
    def write(self, media: Sequence[MediaRow], faces: Sequence[FaceRow],
              replace: Sequence[str] | None = None, tracks: Sequence[TrackRow] = ()) -> None:
        """Replace the faces (and tracks) of these photos and videos, then mark them
        as indexed.

        The order makes a killed write harmless: a media row exists only once all of
        its faces do, and a re-run deletes leftovers of an unmarked file first.
        `replace` names the files that may have face rows already (default: all).
        """
        if not media:
            return
        self._delete_faces([m.image_id for m in media] if replace is None else replace)
        if faces:
            self.client.insert(self.faces_name, [FACES.to_db(f) for f in faces])
        if tracks:
            self.client.insert(self.tracks_name, [TRACKS.to_db(t) for t in tracks])
        self.client.upsert(self.media_name, [MEDIA.to_db(m) for m in media])

    def touch(self, media: Sequence[MediaRow]) -> None:
        """Record a new size/mtime for files whose content did not change."""
        if media:
            self.client.upsert(self.media_name, [MEDIA.to_db(m) for m in media])

    def remove(self, media_ids: Sequence[str]) -> None:
        """Forget these files and their faces (marker first: a half-done removal is
        finished by the next `--sync`, never leaves faces of a file marked as gone)."""
        for chunk in _chunks(list(media_ids), 500):
            self.client.delete(self.media_name, filter=_in_filter("image_id", chunk))
            self.client.delete(self.faces_name, filter=_in_filter("image_id", chunk))
            self.client.delete(self.tracks_name, filter=_in_filter("video_id", chunk))

    def _delete_faces(self, media_ids: Sequence[str]) -> None:
        # Look first: new files (the common case) have nothing to delete, and every
        # delete leaves a tombstone that searches must filter until compaction.
        for chunk in _chunks(list(media_ids), 500):
            for table, name in ((FACES, self.faces_name), (TRACKS, self.tracks_name)):
                stale = self._query(name, filter=_in_filter(table.group, chunk),
                                    output_fields=[table.primary])
                if stale:
                    self.client.delete(name, ids=[r[table.primary] for r in stale])

    def flush(self) -> None:
        """Seal what was written so searches read few, large segments (Milvus Lite
        searches each segment in turn: hundreds of small ones cost 10x)."""
        for name in self._names:
            self.client.flush(name)

    # -- integrity -----------------------------------------------------------------
    def consistent(self, media: Iterable[dict]) -> bool:
        """True when every face and track row belongs to a marked photo or video (no
        interrupted write)."""
        counts = self.count()
        return counts["faces"] + counts["tracks"] == sum(int(r["n_faces"]) for r in media)

    def face_counts(self) -> dict[str, int]:
        """Stored face (or track) rows per photo (or video) id: a full scan, for repairs."""
        counts: dict[str, int] = {}
        for table, name in ((FACES, self.faces_name), (TRACKS, self.tracks_name)):
            for row in self._iterate(name, [table.group]):
                counts[row[table.group]] = counts.get(row[table.group], 0) + 1
        return counts

    def check(self) -> None:
        """Cheap guard against answering from a damaged index: every file that has faces
        needs at least one face row. Raises DatabaseError with the recovery step."""
        with database_errors(self.store.uri):
            counts = self.count()
            faces = counts["faces"] + counts["tracks"]
            with_faces = self._query(self.media_name, filter="n_faces > 0",
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
                "images": rows(self.media_name, 'media_type == "image"'),
                "videos": rows(self.media_name, 'media_type == "video"')}

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

    # -- reads ---------------------------------------------------------------------
    def media(self) -> Iterator[dict]:
        """Every media row, with exactly the fields of `MediaRow`."""
        yield from self._iterate(self.media_name, MEDIA.names)

    def all_faces(self, with_embeddings: bool = False) -> Iterator[dict]:
        fields = [f for f in FACES.names if with_embeddings or f != "embedding"]
        yield from self._iterate(self.faces_name, fields)

    def all_tracks(self, with_embeddings: bool = False) -> Iterator[dict]:
        fields = [f for f in TRACKS.names if with_embeddings or f != "embedding"]
        yield from self._iterate(self.tracks_name, fields)

    def row_ids(self, kind: str = "faces") -> Iterator[str]:
        """Every face id (or track descriptor row id): a scan of ids only."""
        table, name = (FACES, self.faces_name) if kind == "faces" else \
            (TRACKS, self.tracks_name)
        for row in self._iterate(name, [table.primary]):
            yield row[table.primary]

    def faces_by_id(self, face_ids: Sequence[str]) -> list[dict]:
        """These faces' rows, embeddings included (unknown ids are left out)."""
        out: list[dict] = []
        for chunk in _chunks(list(face_ids), 1000):
            out += [dict(r) for r in self._get(self.faces_name, ids=chunk,
                                               output_fields=FACES.names)]
        return out

    def faces_of(self, image_ids: Sequence[str]) -> list[dict]:
        """Every face row of these photos, embeddings included."""
        out: list[dict] = []
        for chunk in _chunks(list(image_ids), 500):
            out += [dict(r) for r in self._query(self.faces_name,
                                                 filter=_in_filter("image_id", chunk),
                                                 output_fields=FACES.names)]
        return out

    def tracks_of(self, video_ids: Sequence[str]) -> list[dict]:
        """Every track descriptor row of these videos, embeddings included."""
        out: list[dict] = []
        for chunk in _chunks(list(video_ids), 500):
            out += [dict(r) for r in self._query(self.tracks_name,
                                                 filter=_in_filter("video_id", chunk),
                                                 output_fields=TRACKS.names)]
        return out

    def media_by_id(self, media_ids: Sequence[str]) -> list[dict]:
        """These media rows (unknown ids are left out)."""
        out: list[dict] = []
        for chunk in _chunks(list(media_ids), 1000):
            out += [dict(r) for r in self._get(self.media_name, ids=chunk,
                                               output_fields=MEDIA.names)]
        return out

    def get_media(self, media_id: str) -> dict | None:
        rows = self._get(self.media_name, ids=[media_id],
                         output_fields=["image_id", "path", "content_hash", "n_faces",
                                        "label", "width", "height", "media_type"])
        return dict(rows[0]) if rows else None

    def get_face(self, face_id: str) -> dict | None:
        rows = self._get(self.faces_name, ids=[face_id],
                         output_fields=["image_id", "path", "face_index", "box", "label"])
        return dict(rows[0]) if rows else None

    def face_landmarks(self, face_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored (5, 2) landmarks of these faces, by face id (unknown ids left out)."""
        if not face_ids:
            return {}
        with database_errors(self.store.uri):
            rows = self._get(self.faces_name, ids=list(face_ids),
                             output_fields=["face_id", "landmarks"])
        return {str(r["face_id"]): np.asarray(r["landmarks"], np.float32).reshape(5, 2)
                for r in rows}

    def get_track(self, video_id: str, track_index: int) -> dict | None:
        """A track's first descriptor row (time span, thumbnail frame and box)."""
        rows = self._get(self.tracks_name, ids=[track_row_id(video_id, track_index, 0)],
                         output_fields=["video_id", "path", "track_index", "start",
                                        "end", "frame", "box", "label"])
        return dict(rows[0]) if rows else None

    def embeddings(self, hits: Sequence[FaceHit]) -> np.ndarray:
        """(len(hits), dim): the stored vector of each hit's face or track descriptor."""
        vectors: dict[str, np.ndarray] = {}
        for media_type, name in (("image", self.faces_name), ("video", self.tracks_name)):
            ids = [h.face_id for h in hits if h.media_type == media_type]
            if ids:
                with database_errors(self.store.uri):
                    rows = self._get(name, ids=ids, output_fields=["embedding"])
                for row in rows:
                    key = str(row.get("face_id", row.get("row_id", row.get("id"))))
                    vectors[key] = np.asarray(row["embedding"], np.float32)
        return np.stack([vectors[h.face_id] for h in hits])

    def list_media(self, offset: int = 0, limit: int = 50, label: str = "") -> list[dict]:
        """A page of indexed files, optionally those whose label contains `label`
        (letters, digits, space, '_' and '-' only: the text goes into a filter)."""
        if label and not all(c.isalnum() or c in " _-" for c in label):
            raise ValueError("label filter: letters, digits, spaces, '_' and '-' only")
        where = f'label like "%{label}%"' if label else ""
        rows = self._query(self.media_name, filter=where, offset=offset, limit=limit,
                           output_fields=["image_id", "path", "label", "media_type",
                                          "n_faces", "width", "height"])
        return [dict(r) for r in rows]

    def _query(self, collection: str, **kwargs) -> list:
        return self.client.query(collection, **READ, **kwargs)

    def _get(self, collection: str, **kwargs) -> list:
        return self.client.get(collection, **READ, **kwargs)

    def _iterate(self, collection: str, fields: list[str]) -> Iterator[dict]:
        iterator = self.client.query_iterator(collection, batch_size=2000, output_fields=fields)
        try:
            while batch := iterator.next():
                yield from batch
        finally:
            iterator.close()

    # -- search --------------------------------------------------------------------
    def search(self, vectors: np.ndarray, k: int, exclude_hash: str = "",
               per_image: bool = True) -> list[list[FaceHit]]:
        """For each query vector, the k best images (their best face each), best first."""
        with database_errors(self.store.uri):
            return self._searcher(FACE_SEARCH).search(vectors, k, exclude_hash, per_image)

    def search_tracks(self, vectors: np.ndarray, k: int,
                      exclude_hash: str = "") -> list[list[FaceHit]]:
        """For each query vector, the k best videos (their best track descriptor each)."""
        with database_errors(self.store.uri):
            return self._searcher(TRACK_SEARCH).search(vectors, k, exclude_hash)

    def neighbours(self, vectors: np.ndarray, k: int, kind: str = "faces",
                   batch: int = 256) -> list[list[tuple[str, float]]]:
        """For each vector, its k nearest face rows (or track descriptor rows) as
        (row id, similarity), best first: many queries per request, for the people
        graph (`revsearch.people.graph`)."""
        table = FACES if kind == "faces" else TRACKS
        name = self.faces_name if kind == "faces" else self.tracks_name
        params = self.store.backend.search_params(self.metric, self.search_ef, k)
        out: list[list[tuple[str, float]]] = []
        with database_errors(self.store.uri):
            for start in range(0, len(vectors), batch):
                chunk = np.asarray(vectors[start:start + batch], dtype=np.float32)
                found = self.client.search(name, **READ, data=chunk.tolist(), limit=k,
                                           search_params=params, output_fields=[])
                out.extend([(str(h.get("id", h.get(table.primary))),
                             similarity_of(float(h["distance"]), self.metric)) for h in hits]
                           for hits in found)
        return out

    def _searcher(self, kind: Kind) -> Searcher:
        return Searcher(self.client, self.store.backend, kind.table.name(self.key), kind,
                        self.metric, self.search_ef)


def copy_space(src: SpaceCollections, dst: SpaceCollections,
               batch: int = 1000) -> dict[str, int]:
    """Copy every face, track and media row of one space, streaming; media last, as
    ingest does."""
    counts = {"faces": 0, "tracks": 0, "images": 0}
    sources = ((FACES, src.all_faces(with_embeddings=True), dst.faces_name, "faces"),
               (TRACKS, src.all_tracks(with_embeddings=True), dst.tracks_name, "tracks"),
               (MEDIA, src.media(), dst.media_name, "images"))
    for table, rows, name, counted in sources:
        for chunk in _chunks(rows, batch):
            dst.client.upsert(name, [table.to_db(table.from_db(r)) for r in chunk])
            counts[counted] += len(chunk)
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
