"""Ingest: reader -> mapper -> writer.

- reader (`scan`): walks the folders, tells media from other files by content, and
  compares each file with what the index holds (size and mtime first, then the content
  hash), so unchanged files cost one `stat`.
- mapper (`analyze_file`): decode, detect every face, align, embed; for a video, also
  link faces into tracks and aggregate each (`analyze_video`). Runs in worker
  processes (one per core), each with its own models and one inference thread.
- writer (`Writer`): batches rows into the store; the image marker goes in after its
  faces, which is what makes a killed ingest resumable (see `store.FaceCollection.write`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .config import Settings
from .errors import MediaError, RevsearchError
from .media import content_hash, decode_image, read_bytes, sniff, walk
from .pipeline import Pipeline, central_face, main_track
from .store import (
    FaceCollection,
    FaceRow,
    ImageRow,
    TrackRow,
    face_id_for,
    image_id_for,
    track_row_id,
)
from .video import is_frame_folder, stat_video, video_digest

log = logging.getLogger(__name__)

LABEL_MODES = ("auto", "parent", "none")


class IngestError(RevsearchError):
    """The ingest cannot go on (its workers cannot run)."""


@dataclass(frozen=True)
class Task:
    path: str
    label: str
    media: str = "image"  # or "video" (a file or a frame folder)


@dataclass
class Problem:
    path: str
    reason: str


@dataclass
class Outcome:
    """What the mapper made of one file: rows to write, or the problem."""

    path: str
    image: ImageRow | None = None
    faces: list[FaceRow] = field(default_factory=list)
    problem: Problem | None = None
    tracks: list[TrackRow] = field(default_factory=list)


@dataclass
class Plan:
    todo: list[Task]
    unchanged: int
    touched: list[ImageRow]
    removed: list[str]
    problems: list[Problem]


@dataclass
class IngestReport:
    """The result of an ingest; `problems` lists every file that was not indexed."""

    scanned: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    faces: int = 0
    no_face: int = 0
    videos: int = 0
    tracks: int = 0
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    log_path: str = ""

    def summary(self) -> str:
        rate = self.indexed / self.seconds if self.seconds > 0 else 0.0
        videos = f", {self.videos} videos with {self.tracks} face tracks" if self.videos else ""
        lines = [
            f"scanned {self.scanned} files: indexed {self.indexed} ({self.faces} faces, "
            f"{self.no_face} with no face{videos}), unchanged {self.unchanged}, "
            f"removed {self.removed}, problems {len(self.problems)}; {self.seconds:.1f} s "
            f"({rate:.1f} files/s)"
        ]
        lines += [f"  skipped {p.path}: {p.reason}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  ... and {len(self.problems) - 50} more")
        if self.log_path:
            lines.append(f"report: {self.log_path}")
        return "\n".join(lines)


# -- reader ----------------------------------------------------------------------------
def label_for(path: Path, mode: str) -> str:
    """The identity label a dataset's layout gives a file.

    'auto' follows LFW's convention (`Name/Name_0001.jpg`): the folder names the person
    when the file name starts with it; and YouTube Faces' (`<root>/Name/<video>/`
    frame folders). 'parent' always uses the folder name.
    """
    if mode == "none":
        return ""
    parent = path.parent.name
    if mode == "parent":
        return parent
    if mode == "auto":
        if is_frame_folder(path):
            return parent
        return parent if parent and path.stem.startswith(parent + "_") else ""
    raise ValueError(f"unknown label mode {mode!r}; choose from {LABEL_MODES}")


def _under(path: str, roots: Sequence[Path]) -> bool:
    p = Path(path)
    return any(p == r or r in p.parents for r in roots)


def scan(paths: Iterable[str | os.PathLike], known: dict[str, dict], *, labels: str = "auto",
         sync: bool = False, max_bytes: int = 200 * 1024 * 1024) -> Plan:
    """Decide, for every file (or frame folder) under `paths`, whether it needs
    (re)processing."""
    roots = [Path(p).expanduser().resolve() for p in paths]
    plan = Plan(todo=[], unchanged=0, touched=[], removed=[], problems=[])
    seen: set[str] = set()
    for file in walk(roots, unit=is_frame_folder):
        path = str(file)  # under a resolved root, so already absolute
        seen.add(path)
        try:
            size, mtime_ns = stat_video(file) if file.is_dir() else _stat(file)
            kind = "video" if file.is_dir() else _kind(file)
        except OSError as exc:
            plan.problems.append(Problem(path, f"cannot read file: {exc.strerror or exc}"))
            continue
        if kind is None:
            reason = "not an image or video (unrecognised content)"
            plan.problems.append(Problem(path, f"{reason}, extension {file.suffix or 'none'}"))
            continue
        row = known.get(path)
        if row and row["size"] == size and row["mtime_ns"] == mtime_ns:
            plan.unchanged += 1
            continue
        if row and size > 0 and (kind == "video" or size <= max_bytes):
            try:
                digest = video_digest(file) if kind == "video" else content_hash(
                    file.read_bytes())
            except OSError:
                digest = ""
            if digest == row["content_hash"]:
                plan.unchanged += 1
                plan.touched.append(ImageRow(**{**row, "size": size, "mtime_ns": mtime_ns}))
                continue
        plan.todo.append(Task(path, label_for(file, labels), kind))
    if sync:
        plan.removed = [p for p in known if p not in seen and _under(p, roots)]
    return plan


def _stat(file: Path) -> tuple[int, int]:
    stat = file.stat()
    return stat.st_size, stat.st_mtime_ns


def _kind(file: Path) -> str | None:
    with open(file, "rb") as fh:
        head = fh.read(16)
    return sniff(head) if head else "image"  # empty files are reported by the mapper


# -- mapper ----------------------------------------------------------------------------
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
    row = ImageRow(image_id=image_id, path=task.path, content_hash=digest, size=stat.st_size,
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
    row = ImageRow(image_id=video_id, path=task.path, content_hash=digest, size=size,
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


# -- writer ----------------------------------------------------------------------------
class Writer:
    """Buffers outcomes and writes them in batches (fewer, larger database calls)."""

    def __init__(self, collection: FaceCollection, batch_images: int = 64,
                 max_seconds: float = 2.0, known: set[str] | None = None) -> None:
        """`known`: image ids that may have face rows already; None means any may."""
        self.collection = collection
        self.known = known
        self.batch_images = batch_images
        self.max_seconds = max_seconds
        self._images: list[ImageRow] = []
        self._faces: list[FaceRow] = []
        self._tracks: list[TrackRow] = []
        self._since = time.monotonic()

    def add(self, outcome: Outcome) -> None:
        if outcome.image is None:
            return
        self._images.append(outcome.image)
        self._faces.extend(outcome.faces)
        self._tracks.extend(outcome.tracks)
        if (len(self._images) >= self.batch_images
                or time.monotonic() - self._since > self.max_seconds):
            self.flush()

    def flush(self) -> None:
        if self._images:
            replace = None if self.known is None else \
                [im.image_id for im in self._images if im.image_id in self.known]
            self.collection.write(self._images, self._faces, replace, self._tracks)
        self._images, self._faces, self._tracks = [], [], []
        self._since = time.monotonic()


# -- the whole ingest ------------------------------------------------------------------
def _default_log_path(settings: Settings) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return settings.home / "logs" / f"ingest-{stamp}-{os.getpid()}.jsonl"


def _write_log(path: Path, report: IngestReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for p in report.problems:
            fh.write(json.dumps({"event": "problem", **asdict(p)}) + "\n")
        summary = {k: v for k, v in asdict(report).items() if k != "problems"}
        fh.write(json.dumps({"event": "summary", "problems": len(report.problems), **summary})
                 + "\n")


def run_ingest(paths: Sequence[str | os.PathLike], collection: FaceCollection,
               settings: Settings, *, labels: str = "auto", sync: bool = False,
               report_path: str | os.PathLike | None = None,
               on_progress: Callable[[int, int], None] | None = None,
               pipeline: Pipeline | None = None) -> IngestReport:
    """Index every image under `paths` into `collection`; see module docstring."""
    started = time.monotonic()
    known = {row["path"]: row for row in collection.images()}
    # After a clean run, only re-indexed files can have old face rows; after a killed
    # one, any file may have partial rows and each batch is checked.
    clean = collection.consistent(known.values())
    if not clean:
        known = _drop_damaged(known, collection)
    plan = scan(paths, known, labels=labels, sync=sync, max_bytes=settings.max_file_bytes)
    report = IngestReport(unchanged=plan.unchanged, problems=list(plan.problems))
    report.scanned = len(plan.todo) + plan.unchanged + len(plan.problems)
    collection.touch(plan.touched)
    if plan.removed:
        collection.remove([known[p]["image_id"] for p in plan.removed])
        report.removed = len(plan.removed)

    writer = Writer(collection, known={r["image_id"] for r in known.values()} if clean else None)
    bar = _progress_bar(len(plan.todo), settings.progress)
    try:
        for done, outcome in enumerate(map_files(plan.todo, settings, pipeline), start=1):
            if outcome.problem:
                report.problems.append(outcome.problem)
            else:
                report.indexed += 1
                report.faces += len(outcome.faces)
                report.no_face += not (outcome.faces or outcome.tracks)
                if outcome.image and outcome.image.media_type == "video":
                    report.videos += 1
                    report.tracks += len({t.track_index for t in outcome.tracks})
                writer.add(outcome)
            bar.update(1)
            if on_progress:
                on_progress(done, len(plan.todo))
        writer.flush()
    finally:
        bar.close()
        collection.flush()
    report.seconds = time.monotonic() - started
    log_path = Path(report_path) if report_path else _default_log_path(settings)
    report.log_path = str(log_path)
    _write_log(log_path, report)
    return report


def _drop_damaged(known: dict[str, dict], collection: FaceCollection) -> dict[str, dict]:
    """Forget the markers of images whose face rows do not match them, so this run
    processes them again (repairs an interrupted write or lost face rows)."""
    counts = collection.face_counts()
    damaged = {p for p, r in known.items() if counts.get(r["image_id"], 0) != r["n_faces"]}
    if damaged:
        log.warning("%d indexed images have missing or extra face rows; re-indexing them",
                    len(damaged))
    return {p: r for p, r in known.items() if p not in damaged}


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="file", disable=not enabled or total == 0,
                dynamic_ncols=True, smoothing=0.1)
