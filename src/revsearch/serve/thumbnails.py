"""Thumbnails: an indexed photo or video frame, or a query video's track, face boxed."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from revsearch.errors import MediaError, NotFoundError
from revsearch.listing import MediaItem
from revsearch.media import decode_image
from revsearch.query import Query
from revsearch.video.frames import read_frame


def media_thumbnail(item: MediaItem, face: int | None, track: int | None,
                    max_pixels: int, size: int = 320) -> bytes:
    """An indexed file (from `RevSearch.get`): a photo with face `face` boxed (none
    boxed without it), or a video's track `track` (default 0) in its best frame."""
    if item.media_type == "video":
        index = track or 0
        found = next((t for t in item.tracks or [] if t.index == index), None)
        if found is None:
            raise NotFoundError("no such track")
        return render_thumbnail(read_frame(item.path, found.frame), found.box, size)
    image = decode_image(Path(item.path).read_bytes(), max_pixels)
    box = None
    if face is not None:
        found = next((f for f in item.faces or [] if f.index == face), None)
        if found is None:
            raise NotFoundError("no such face")
        box = found.box
    return render_thumbnail(image, box, size)


def query_track_thumbnail(query: Query, track: int, size: int = 200) -> bytes:
    """The face of a query video's track, cropped from its best frame."""
    tracks = query.analysis.tracks if query.analysis is not None else []
    if not 0 <= track < len(tracks) or query.video is None:
        raise NotFoundError("no such track")
    best = tracks[track].best
    image = read_frame(query.video, best.frame)
    return render_thumbnail(image, list(best.face.box), size, crop=True)


def render_thumbnail(image: np.ndarray, box: list[float] | None, size: int,
                     crop: bool = False) -> bytes:
    """JPEG bytes: the image (or a crop around `box`) at most `size` px, box drawn."""
    if box is not None and crop:
        x, y, w, h = box
        pad = 0.4 * max(w, h)
        x0, y0 = int(max(0, x - pad)), int(max(0, y - pad))
        x1 = int(min(image.shape[1], x + w + pad))
        y1 = int(min(image.shape[0], y + h + pad))
        image = image[y0:y1, x0:x1]
        box = [x - x0, y - y0, w, h]
    scale = min(1.0, size / max(image.shape[:2]))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)),
                                   max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    else:
        image = image.copy()
    if box is not None:
        x, y, w, h = (v * scale for v in box)
        thickness = max(2, round(max(image.shape[:2]) / 160))
        cv2.rectangle(image, (round(x), round(y)), (round(x + w), round(y + h)), (0, 200, 0),
                      thickness)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise MediaError("cannot encode the thumbnail")
    return buf.tobytes()
