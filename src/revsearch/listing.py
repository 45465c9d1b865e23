"""What the index holds, as typed records: its files (photos and videos), their stored
faces or face tracks. Read by `RevSearch.media()` and `RevSearch.get()`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from revsearch.errors import NotFoundError
from revsearch.store import SpaceCollections, face_id_for

_MEDIA_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class MediaFace:
    """A stored face of an indexed photo; `index` numbers it left to right."""

    index: int
    box: list[float]  # x, y, width, height in the photo's pixels


@dataclass
class MediaTrack:
    """A stored face track of an indexed video; `index` orders tracks by first appearance."""

    index: int
    start: float  # seconds
    end: float
    frame: int  # its best frame, the thumbnail
    box: list[float]  # the face in that frame


@dataclass
class MediaItem:
    """One indexed file: a photo, or a video (a file or a frame folder).

    `n_faces` counts its stored face rows, or for a video its track descriptors (a track
    has several with the `prototypes` aggregation). `faces` (photo) or `tracks` (video)
    are filled by `RevSearch.get`, left empty by the `media()` listing.
    """

    image_id: str
    path: str
    media_type: str  # "image" or "video"
    label: str
    n_faces: int
    width: int
    height: int
    faces: list[MediaFace] | None = None
    tracks: list[MediaTrack] | None = None


def list_media(collection: SpaceCollections, offset: int = 0, limit: int = 50,
               label: str = "") -> list[MediaItem]:
    return [_item(r) for r in collection.list_media(max(0, offset), limit, label)]


def get_media(collection: SpaceCollections, media_id: str) -> MediaItem:
    """The indexed file with this id, its faces or tracks included."""
    if not _MEDIA_ID.match(media_id):
        raise NotFoundError(f"no such media {media_id!r}: media ids are 32 hex digits")
    row = collection.get_media(media_id)
    if row is None:
        raise NotFoundError(f"no such media in the index: {media_id}")
    item = _item(row)
    if item.media_type == "video":
        item.tracks = _tracks(collection, item)
    else:
        found = (collection.get_face(face_id_for(media_id, i)) for i in range(item.n_faces))
        item.faces = [MediaFace(int(f["face_index"]), [float(v) for v in f["box"]])
                      for f in found if f is not None]
    return item


def _tracks(collection: SpaceCollections, item: MediaItem) -> list[MediaTrack]:
    # Tracks are numbered from 0 with no gap; `n_faces` (descriptors) bounds their count.
    tracks = []
    for index in range(item.n_faces):
        t = collection.get_track(item.image_id, index)
        if t is None:
            break
        tracks.append(MediaTrack(index, round(float(t["start"]), 3), round(float(t["end"]), 3),
                                 int(t["frame"]), [float(v) for v in t["box"]]))
    return tracks


def _item(row: dict) -> MediaItem:
    return MediaItem(image_id=row["image_id"], path=row["path"],
                     media_type=row.get("media_type") or "image", label=row.get("label", ""),
                     n_faces=int(row["n_faces"]), width=int(row.get("width", 0)),
                     height=int(row.get("height", 0)))
