"""Mapper: decode, detect every face, align, embed; videos are tracked and aggregated.

Runs in worker processes (one per core), each with its own models and one inference
thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from revsearch.config import Settings
from revsearch.errors import MediaError
from revsearch.faces.pipeline import Pipeline, central_face, main_track
from revsearch.ingest.records import IngestError, Outcome, Problem, Task
from revsearch.media import content_hash, decode_image, read_bytes
from revsearch.store import FaceRow, MediaRow, TrackRow, face_id_for, image_id_for, track_row_id
from revsearch.video.frames import stat_video, video_digest

log = logging.getLogger(__name__)

_worker_pipeline: Pipeline | None = None


def _init_worker(settings: Settings) -> None:
    global _worker_pipeline
    import cv2

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # One worker per core: OpenCV's own thread pool (the detector's DNN, resizing) would
    # otherwise start a thread per core in every worker and make them fight.
    cv2.setNumThreads(1)
    _exit_with_parent()
    _worker_pipeline = Pipeline(settings, threads=1)


def _exit_with_parent(interval: float = 1.0) -> None:
    """End this worker when the ingest that started it dies (e.g. kill -9).

    A pool worker never sees EOF on its task queue, because every worker holds both
    ends of that pipe; without this it would wait forever, holding its models' memory.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _analyze_in_worker(task: Task) -> Outcome:
    assert _worker_pipeline is not None, "worker not initialised"
    return analyze_file(task, _worker_pipeline)


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


def map_files(tasks: Sequence[Task], settings: Settings,
              pipeline: Pipeline | None = None) -> Iterable[Outcome]:
    """Run `analyze_file` over the tasks on `settings.workers` processes, any order.

    A worker that dies (a decoder crash) is replaced; the files it held are retried
    once each on their own and reported if they kill a worker again. A few files are
    done in this process, with `pipeline` if the caller has one loaded.
    """
    if settings.workers <= 1 or len(tasks) <= 2:
        pipeline = pipeline or Pipeline(settings, threads=max(1, settings.workers))
        for task in tasks:
            yield analyze_file(task, pipeline)
        return
    pending = list(reversed(tasks))
    suspects: list[Task] = []
    context = multiprocessing.get_context("spawn")  # no fork of gRPC threads
    while pending or suspects:
        solo = not pending
        queue = pending if pending else [suspects.pop()]
        workers = 1 if solo else min(settings.workers, len(queue))
        produced = 0
        with _main_script_hidden(), cf.ProcessPoolExecutor(
                workers, mp_context=context, initializer=_init_worker,
                initargs=(settings,)) as pool:
            running: dict[cf.Future, Task] = {}
            try:
                while queue or running:
                    while queue and len(running) < workers * 4:
                        task = queue.pop()
                        running[pool.submit(_analyze_in_worker, task)] = task
                    done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                    for future in done:
                        task = running.pop(future)
                        produced += 1
                        yield future.result()
            except cf.process.BrokenProcessPool as exc:
                if not produced and not solo:
                    raise IngestError(
                        "the ingest's worker processes died before finishing any file "
                        "(out of memory? a model that fails to load?); try --workers 1 "
                        "to see the error") from exc
                lost = list(running.values())
                if solo:
                    yield from (Outcome(t.path, problem=Problem(
                        t.path, "the decoder crashed on this file")) for t in lost)
                else:
                    suspects.extend(lost)
                    log.warning("a worker died; retrying %d files one by one", len(lost))


@contextlib.contextmanager
def _main_script_hidden():
    """Keep spawned workers from re-running the caller's script.

    A spawned child re-imports `__main__` from its file unless the script guards itself
    with `if __name__ == "__main__":`; an unguarded script calling `index()` would open
    the (locked) database again in every worker. The workers need nothing from
    `__main__`, so it is hidden while they start.
    """
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main and k in main.__dict__}
    try:
        for key in saved:
            if key == "__file__":
                del main.__dict__[key]
            else:
                main.__dict__[key] = None
        yield
    finally:
        if main:
            main.__dict__.update(saved)


