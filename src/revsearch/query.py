"""A query, decoded once: a photo and its faces, or a video and its face tracks.

    >>> with rs.query("group.jpg") as q:          # decode and detect once ...
    ...     print([f.box for f in q.faces])
    ...     first = rs.search(q, face=0)          # ... then search as often as needed
    ...     second = rs.search(q, face=1)

A query is made from a path (a photo, a video file or a YouTube Faces frame folder),
the bytes of a photo or video, or a numpy array. Arrays follow OpenCV: BGR channel
order, uint8, shape (H, W, 3). A grayscale (H, W) or (H, W, 1) array is converted and
a fourth (alpha) channel dropped; any other dtype or shape is refused rather than
guessed at, because a wrong guess gives wrong vectors, not an error. An RGB array
(Pillow, matplotlib, imageio) must say so: `rs.query(array, colour="rgb")`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from revsearch.config import Settings
from revsearch.errors import MediaError
from revsearch.faces.detect import Face
from revsearch.faces.pipeline import Pipeline, VideoAnalysis
from revsearch.media import content_hash, decode_image, read_bytes, sniff
from revsearch.search import QueryFace, QueryTrack, describe_faces, describe_tracks
from revsearch.video.frames import is_video, stat_video, video_digest

Source = str | os.PathLike | bytes | np.ndarray
COLOURS = ("bgr", "rgb")


@dataclass(eq=False)
class Query:
    """A decoded query and what the face pipeline found in it (see module docstring).

    `digest` is the content hash that leaves the query out of its own results when it
    is indexed ("" for arrays, which have no file). A video given as bytes is written
    to a temporary file, removed by `close()` (or the `with` block, or at the latest
    when the query is garbage-collected).
    """

    kind: str  # "image" or "video"
    name: str  # what results call it: the path, "upload", "query image"
    digest: str
    image: np.ndarray | None = field(default=None, repr=False)  # BGR uint8, photos only
    video: Path | None = None  # the file or frame folder, videos only
    detected: list[Face] = field(default_factory=list, repr=False)  # photos
    analysis: VideoAnalysis | None = field(default=None, repr=False)  # videos
    # What found the faces or tracks: another index's pipeline must look again.
    pipeline: Pipeline | None = field(default=None, repr=False)
    _cleanup: weakref.finalize | None = field(default=None, repr=False)

    @property
    def faces(self) -> list[QueryFace]:
        """The faces of a photo, left to right (`default` marks the largest); [] for a video."""
        return describe_faces(self.detected) if self.kind == "image" else []

    @property
    def tracks(self) -> list[QueryTrack]:
        """The face tracks of a video, by first appearance (`default` marks the most
        prominent); [] for a photo."""
        return describe_tracks(self.analysis.tracks) if self.analysis is not None else []

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Query:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(source: Source, settings: Settings, *, colour: str = "bgr",
         name: str | None = None) -> Query:
    """Decode `source` into a Query (no faces yet: `RevSearch.query` finds them)."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour order {colour!r}; choose from {COLOURS}")
    if isinstance(source, np.ndarray):
        return Query("image", name or "query image", "",
                     image=to_bgr(source, colour, settings.max_pixels))
    if colour != "bgr":
        raise ValueError("colour applies to arrays only: files and bytes are decoded to BGR")
    if isinstance(source, bytes | bytearray | memoryview):
        return _from_bytes(bytes(source), settings, name or "upload")
    path = Path(source)
    if is_video(path):
        if stat_video(path)[0] > settings.max_video_bytes:
            raise MediaError(f"video too large: {path} is over {settings.max_video_bytes} bytes")
        return Query("video", name or str(source), video_digest(path), video=path)
    data = read_bytes(path, settings.max_file_bytes)
    return Query("image", name or str(path), content_hash(data),
                 image=decode_image(data, settings.max_pixels))


def _from_bytes(data: bytes, settings: Settings, name: str) -> Query:
    if sniff(data[:16]) != "video":
        return Query("image", name, content_hash(data),
                     image=decode_image(data, settings.max_pixels))
    if len(data) > settings.max_video_bytes:
        raise MediaError(f"video too large: {len(data)} bytes > limit "
                         f"{settings.max_video_bytes}")
    # The video reader needs a file; the query owns it until closed.
    fd, temp = tempfile.mkstemp(suffix=".video", prefix="revsearch-query-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        _remove(temp)
        raise
    query = Query("video", name, content_hash(data), video=Path(temp))
    query._cleanup = weakref.finalize(query, _remove, temp)
    return query


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def to_bgr(array: np.ndarray, colour: str = "bgr", max_pixels: int = 100_000_000) -> np.ndarray:
    """A copy of an image array as BGR uint8 (H, W, 3), or MediaError saying what is wrong.

    `colour` is the channel order of a colour array: "bgr" (OpenCV) or "rgb". Grayscale
    is converted and alpha dropped; other dtypes are refused, since the value range
    (0-1 floats? 0-65535?) cannot be told from the array.
    """
    if colour not in COLOURS:
        raise ValueError(f"unknown colour order {colour!r}; choose from {COLOURS}")
    if array.dtype != np.uint8:
        raise MediaError(f"image arrays must be uint8 (0-255), not {array.dtype}; for floats "
                         f"in [0, 1] pass (array * 255).round().astype(np.uint8)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise MediaError(f"image array of shape {array.shape}: expected (H, W, 3) BGR, "
                         f"(H, W, 4) BGRA or (H, W) grayscale")
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise MediaError(f"empty image array of shape {array.shape}")
    if height * width > max_pixels:
        raise MediaError(f"image too large: {width}x{height} = {width * height} pixels "
                         f"> limit {max_pixels}")
    if array.ndim == 2:
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_GRAY2BGR)
    array = array[:, :, :3]
    if colour == "rgb":
        array = array[:, :, ::-1]
    return np.array(array, order="C")  # a copy: the caller may reuse its buffer
