"""The stored rows, each field declared once.

Each row dataclass is the field table of its collection: a field's metadata holds its
Milvus type and parameters, and a `Table` turns that into both the collection schema and
the row <-> dict conversion. Three collections per embedding space (`key`, e.g. `sface`),
so vectors of different models are never compared:

- `faces_<key>`: one `FaceRow` per face in a photo.
- `tracks_<key>`: one `TrackRow` per descriptor of a face track in a video (a track has
  one, or several with the `prototypes` aggregation).
- `images_<key>`: one `MediaRow` per ingested photo or video, written *after* its faces or
  tracks (`n_faces` counts those rows): the commit marker that makes ingest resumable.
  The name predates video support and stays, so existing databases still open.

Three more hold the people view (`revsearch.people`), created on first use so that
older databases keep opening:

- `persons_<key>`: one `PersonRow` per person (a cluster of faces and tracks), its name;
- `assignments_<key>`: one `AssignmentRow` per clustered face or track: its person;
- `links_<key>`: one `LinkRow` per piece of user feedback kept across re-clustering:
  "these two are the same person" (a merge) or "not the same person" (a face moved out).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
MAX_PATH = 4096
# Milvus requires a vector field in every collection; the media collection's carries nothing.
FILLER = "unused"


def milvus(milvus_type: str, *, primary: bool = False, **params: Any) -> dict:
    """Field metadata: stored as `milvus_type` (a pymilvus DataType name) with `params`
    (`max_length`, `element_type`, ...; a vector's `dim` is the space's)."""
    return {"milvus_type": milvus_type, "primary": primary, "params": params}


@dataclass(kw_only=True)
class FaceRow:
    """One stored face."""

    face_id: str = field(metadata=milvus("VARCHAR", primary=True, max_length=64))
    image_id: str = field(metadata=milvus("VARCHAR", max_length=32))
    path: str = field(metadata=milvus("VARCHAR", max_length=MAX_PATH))
    content_hash: str = field(metadata=milvus("VARCHAR", max_length=32))
    media_type: str = field(default="image", metadata=milvus("VARCHAR", max_length=16))
    face_index: int = field(metadata=milvus("INT32"))
    box: list[float] = field(metadata=milvus("ARRAY", element_type="FLOAT", max_capacity=4))
    landmarks: list[float] = field(metadata=milvus("ARRAY", element_type="FLOAT", max_capacity=10))
    score: float = field(metadata=milvus("FLOAT"))
    label: str = field(metadata=milvus("VARCHAR", max_length=512))
    embedding: np.ndarray = field(metadata=milvus("FLOAT_VECTOR"))


@dataclass(kw_only=True)
class TrackRow:
    """One stored descriptor of a face track (a video's `n_faces` counts these rows)."""

    row_id: str = field(metadata=milvus("VARCHAR", primary=True, max_length=64))
    video_id: str = field(metadata=milvus("VARCHAR", max_length=32))
    path: str = field(metadata=milvus("VARCHAR", max_length=MAX_PATH))
    content_hash: str = field(metadata=milvus("VARCHAR", max_length=32))
    track_index: int = field(metadata=milvus("INT32"))
    proto_index: int = field(metadata=milvus("INT32"))
    n_frames: int = field(metadata=milvus("INT32"))
    start: float = field(metadata=milvus("FLOAT"))  # seconds
    end: float = field(metadata=milvus("FLOAT"))
    # The thumbnail frame (the track's best-quality detection) and the face in it.
    frame: int = field(metadata=milvus("INT64"))
    box: list[float] = field(metadata=milvus("ARRAY", element_type="FLOAT", max_capacity=4))
    score: float = field(metadata=milvus("FLOAT"))  # that detection's quality
    label: str = field(metadata=milvus("VARCHAR", max_length=512))
    embedding: np.ndarray = field(metadata=milvus("FLOAT_VECTOR"))


@dataclass(kw_only=True)
class MediaRow:
    """One ingested photo or video (present even when it holds no face)."""

    image_id: str = field(metadata=milvus("VARCHAR", primary=True, max_length=32))
    path: str = field(metadata=milvus("VARCHAR", max_length=MAX_PATH))
    content_hash: str = field(metadata=milvus("VARCHAR", max_length=32))
    media_type: str = field(default="image", metadata=milvus("VARCHAR", max_length=16))
    size: int = field(metadata=milvus("INT64"))
    mtime_ns: int = field(metadata=milvus("INT64"))
    width: int = field(metadata=milvus("INT32"))
    height: int = field(metadata=milvus("INT32"))
    n_faces: int = field(metadata=milvus("INT32"))
    label: str = field(default="", metadata=milvus("VARCHAR", max_length=512))


@dataclass(kw_only=True)
class PersonRow:
    """One person: a cluster of faces and face tracks, maybe named."""

    person_id: int = field(metadata=milvus("INT64", primary=True))
    name: str = field(default="", metadata=milvus("VARCHAR", max_length=512))
    # "user" (named by hand, never overwritten) or "label" (seeded from folder labels).
    name_source: str = field(default="", metadata=milvus("VARCHAR", max_length=16))
    created: int = field(default=0, metadata=milvus("INT64"))  # unix seconds
    size: int = field(default=0, metadata=milvus("INT32"))  # faces and tracks
    cover: str = field(default="", metadata=milvus("VARCHAR", max_length=64))  # an item id
    # The mean of its members' unit vectors (not normalised): new faces are compared
    # with it, and updating it for one more member needs only `size`.
    centroid: np.ndarray = field(metadata=milvus("FLOAT_VECTOR"))


@dataclass(kw_only=True)
class AssignmentRow:
    """The person of one face (`item_id` = its face id) or video face track (its video
    id and track number, `<video_id>_<track:04d>`)."""

    item_id: str = field(metadata=milvus("VARCHAR", primary=True, max_length=64))
    person_id: int = field(metadata=milvus("INT64"))
    media_id: str = field(metadata=milvus("VARCHAR", max_length=32))
    kind: str = field(default="face", metadata=milvus("VARCHAR", max_length=8))


@dataclass(kw_only=True)
class LinkRow:
    """User feedback between two faces or tracks: `kind` "must" (same person) or
    "cannot" (`a` is not the person of `b`: `a` moves out when they meet)."""

    link_id: str = field(metadata=milvus("VARCHAR", primary=True, max_length=160))
    a: str = field(metadata=milvus("VARCHAR", max_length=64))
    b: str = field(metadata=milvus("VARCHAR", max_length=64))
    kind: str = field(metadata=milvus("VARCHAR", max_length=8))
    created: int = field(default=0, metadata=milvus("INT64"))


def _vector(value: Any) -> list[float]:
    return np.asarray(value, dtype=np.float32).tolist()


_SCALAR: dict[str, Callable[[Any], Any]] = {
    "VARCHAR": str, "INT32": int, "INT64": int, "FLOAT": float, "FLOAT_VECTOR": _vector}


def _converter(meta: dict) -> Callable[[Any], Any]:
    """Plain Python values of a field's Milvus type (numpy scalars and arrays are not)."""
    if meta["milvus_type"] == "ARRAY":
        element = _SCALAR[meta["params"]["element_type"]]
        return lambda values: [element(v) for v in values]
    return _SCALAR[meta["milvus_type"]]


@dataclass(frozen=True)
class Table:
    """One collection of a space: its row type, and what its name and index need."""

    prefix: str  # the collection of space `key` is `<prefix>_<key>`
    row: type
    group: str = ""  # the field search hits are grouped by; empty: not searched
    description: str = ""

    def name(self, key: str) -> str:
        return f"{self.prefix}_{key}"

    @property
    def fields(self) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(self.row)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def primary(self) -> str:
        return next(f.name for f in self.fields if f.metadata["primary"])

    @property
    def vector(self) -> str:
        """The vector field its index is on (the filler when the rows have none)."""
        found = [f.name for f in self.fields if f.metadata["milvus_type"] == "FLOAT_VECTOR"]
        return found[0] if found else FILLER

    def schema(self, dim: int) -> Any:
        """The pymilvus collection schema; `dim`: the space's vector dimension."""
        from revsearch.store.backend import import_pymilvus

        pymilvus = import_pymilvus()
        DataType = pymilvus.DataType
        schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                                     description=self.description)
        for f in self.fields:
            params = dict(f.metadata["params"])
            if "element_type" in params:
                params["element_type"] = DataType[params["element_type"]]
            if f.metadata["milvus_type"] == "FLOAT_VECTOR":
                params["dim"] = dim
            schema.add_field(f.name, DataType[f.metadata["milvus_type"]],
                             is_primary=f.metadata["primary"], **params)
        if self.vector == FILLER:
            schema.add_field(FILLER, DataType.FLOAT_VECTOR, dim=2)
        return schema

    def to_db(self, row: Any) -> dict:
        """The row as Milvus takes it."""
        out = {f.name: _converter(f.metadata)(getattr(row, f.name)) for f in self.fields}
        if self.vector == FILLER:
            out[FILLER] = [0.0, 0.0]
        return out

    def from_db(self, found: dict) -> Any:
        """A row read back (`found` holds at least every field of the row)."""
        return self.row(**{name: found[name] for name in self.names})


FACES = Table("faces", FaceRow, group="image_id",
              description=json.dumps({"schema": SCHEMA_VERSION}))
TRACKS = Table("tracks", TrackRow, group="video_id")
MEDIA = Table("images", MediaRow)
PERSONS = Table("persons", PersonRow)
ASSIGNMENTS = Table("assignments", AssignmentRow)
LINKS = Table("links", LinkRow)
TABLES = (FACES, TRACKS, MEDIA)
PEOPLE_TABLES = (PERSONS, ASSIGNMENTS, LINKS)


def image_id_for(path: str) -> str:
    """The id of a photo or video: a digest of its path."""
    return hashlib.blake2b(path.encode("utf-8"), digest_size=16).hexdigest()


def face_id_for(image_id: str, index: int) -> str:
    return f"{image_id}_{index:04d}"


def track_row_id(video_id: str, track: int, proto: int) -> str:
    return f"{video_id}_{track:04d}_{proto:02d}"
