"""Mapper: decode, detect every face, align, embed; videos are tracked and aggregated.

Runs in the workers of an ingest engine (revsearch.ingest.engines: processes on this
machine, or Ray actors), each with its own models and one inference thread.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from revsearch.config import Settings
from revsearch.errors import MediaError
from revsearch.faces.pipeline import Pipeline, central_face, main_track
from revsearch.ingest.records import Outcome, Problem, Task
from revsearch.media import content_hash, decode_image, read_bytes
from revsearch.store import FaceRow, MediaRow, TrackRow, face_id_for, image_id_for, track_row_id
from revsearch.video.frames import stat_video, video_digest

if TYPE_CHECKING:
    from revsearch.spaces import Space

log = logging.getLogger(__name__)


def worker_pipeline(settings: Settings, space: Space | None = None) -> Pipeline:
    """The models of one worker: one inference thread, loaded once per worker process."""
    import cv2

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # One worker per core: OpenCV's own thread pool (the detector's DNN, resizing) would
    # otherwise start a thread per core in every worker and make them fight.
    cv2.setNumThreads(1)
    return Pipeline(settings, threads=1, space=space)


def analyze_file(task: Task, pipeline: Pipeline) -> Outcome:
    """Decode one file and turn it into rows; every failure becomes a Problem."""
    if task.media == "video":
        return analyze_video(task, pipeline)
    settings = pipeline.settings
    path = Path(task.path)
    try:
        stat = path.stat()
        data = read_bytes(path, settings.max_file_bytes)
        image = decode_image(data, settings.max_pixels)
    except MediaError as exc:
        return Outcome(task.path, problem=Problem(task.path, str(exc)))
    except OSError as exc:
        return Outcome(task.path, problem=Problem(task.path, f"cannot read file: {exc}"))
    try:
        found = pipeline.analyze(image)
    except Exception as exc:  # a model failure on one odd image must not stop the ingest
        log.exception("analysis failed for %s", task.path)
        return Outcome(task.path, problem=Problem(task.path, f"analysis failed: {exc}"))
    digest = content_hash(data)
    image_id = image_id_for(task.path)
    labelled = central_face([f.face for f in found], image.shape) if task.label else None
    faces = [
        FaceRow(
            face_id=face_id_for(image_id, ef.index), image_id=image_id, path=task.path,
            content_hash=digest, face_index=ef.index, box=list(ef.face.box),
            landmarks=ef.face.landmarks.reshape(-1).tolist(), score=ef.face.score,
            label=task.label if ef.index == labelled else "", embedding=ef.embedding,
        )
        for ef in found
    ]
    row = MediaRow(image_id=image_id, path=task.path, content_hash=digest, size=stat.st_size,
                   mtime_ns=stat.st_mtime_ns, width=image.shape[1], height=image.shape[0],
                   n_faces=len(faces), label=task.label)
    return Outcome(task.path, image=row, faces=faces)


def analyze_video(task: Task, pipeline: Pipeline) -> Outcome:
    """Track the faces of one video and turn each track into descriptor rows."""
    settings = pipeline.settings
    path = Path(task.path)
    try:
        size, mtime_ns = stat_video(path)
        if size > settings.max_video_bytes:
            raise MediaError(f"file too large: {size} bytes > limit {settings.max_video_bytes}")
        digest = video_digest(path)
        found = pipeline.track_video(path, settings.sampling, settings.max_pixels)
    except MediaError as exc:
        return Outcome(task.path, problem=Problem(task.path, str(exc)))
    except OSError as exc:
        return Outcome(task.path, problem=Problem(task.path, f"cannot read file: {exc}"))
    except Exception as exc:  # one odd video must not stop the ingest
        log.exception("analysis failed for %s", task.path)
        return Outcome(task.path, problem=Problem(task.path, f"analysis failed: {exc}"))
    video_id = image_id_for(task.path)
    labelled = main_track(found.tracks) if task.label else None
    rows = []
    for track in found.tracks:
        best = track.best
        for j, vector in enumerate(pipeline.describe_track(track)):
            rows.append(TrackRow(
                row_id=track_row_id(video_id, track.index, j), video_id=video_id,
                path=task.path, content_hash=digest, track_index=track.index, proto_index=j,
                n_frames=len(track.detections), start=track.start, end=track.end,
                frame=best.frame, box=list(best.face.box), score=best.quality,
                label=task.label if track.index == labelled else "", embedding=vector))
    row = MediaRow(image_id=video_id, path=task.path, content_hash=digest, size=size,
                   mtime_ns=mtime_ns, width=found.width, height=found.height,
                   n_faces=len(rows), label=task.label, media_type="video")
    return Outcome(task.path, image=row, tracks=rows)
