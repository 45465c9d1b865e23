"""The whole ingest: reader -> mapper -> writer, with progress and a problem report."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from revsearch.config import Settings
from revsearch.faces.pipeline import Pipeline
from revsearch.ingest.engines import engine_for
from revsearch.ingest.reader import scan
from revsearch.ingest.records import IngestReport, Problem
from revsearch.ingest.writer import Writer
from revsearch.logs import PROGRESS_LOGGER
from revsearch.store import SpaceCollections

log = logging.getLogger(__name__)
progress_log = logging.getLogger(PROGRESS_LOGGER)


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


def run_ingest(paths: Sequence[str | os.PathLike], collection: SpaceCollections,
               settings: Settings, *, labels: str = "auto", sync: bool = False,
               report_path: str | os.PathLike | None = None,
               on_progress: Callable[[int, int], None] | None = None,
               on_problem: Callable[[Problem], None] | None = None,
               pipeline: Pipeline | None = None,
               changed: list[str] | None = None) -> IngestReport:
    """Index every image under `paths` into `collection`; see module docstring.

    `on_progress(done, total)` is called once the folders are scanned (done 0) and after
    each file; `on_problem` with each file that cannot be indexed, as it is found. An
    exception raised by either stops the ingest with every finished file written.
    `changed`, if given, receives the ids of the files written or removed.
    """
    started = time.monotonic()
    engine = engine_for(settings, lite=collection.store.is_lite)  # refuses before any work
    known = {row["path"]: row for row in collection.media()}
    # After a clean run, only re-indexed files can have old face rows; after a killed
    # one, any file may have partial rows and each batch is checked.
    clean = collection.consistent(known.values())
    if not clean:
        known = _drop_damaged(known, collection)
    plan = scan(paths, known, labels=labels, sync=sync, max_bytes=settings.max_file_bytes)
    report = IngestReport(unchanged=plan.unchanged, problems=list(plan.problems))
    report.scanned = len(plan.todo) + plan.unchanged + len(plan.problems)
    if on_problem:
        for problem in plan.problems:
            on_problem(problem)
    collection.touch(plan.touched)
    if plan.removed:
        collection.remove([known[p]["image_id"] for p in plan.removed])
        report.removed = len(plan.removed)
        if changed is not None:
            changed.extend(known[p]["image_id"] for p in plan.removed)

    writer = Writer(collection, known={r["image_id"] for r in known.values()} if clean else None)
    bar = _progress_bar(len(plan.todo), settings.progress)
    try:
        if on_progress:
            on_progress(0, len(plan.todo))
        for done, outcome in enumerate(engine.map(plan.todo, pipeline), start=1):
            if outcome.problem:
                report.problems.append(outcome.problem)
                if on_problem:
                    on_problem(outcome.problem)
            else:
                report.indexed += 1
                report.faces += len(outcome.faces)
                report.no_face += not (outcome.faces or outcome.tracks)
                if outcome.image and outcome.image.media_type == "video":
                    report.videos += 1
                    report.tracks += len({t.track_index for t in outcome.tracks})
                writer.add(outcome)
                if changed is not None and outcome.image is not None:
                    changed.append(outcome.image.image_id)
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


def _drop_damaged(known: dict[str, dict], collection: SpaceCollections) -> dict[str, dict]:
    """Forget the markers of images whose face rows do not match them, so this run
    processes them again (repairs an interrupted write or lost face rows)."""
    counts = collection.face_counts()
    damaged = {p for p, r in known.items() if counts.get(r["image_id"], 0) != r["n_faces"]}
    if damaged:
        log.warning("%d indexed images have missing or extra face rows; re-indexing them",
                    len(damaged))
    return {p: r for p, r in known.items() if p not in damaged}


class _LogProgress:
    """Progress as a log line now and then: a bar's carriage returns would flood a log
    file or a CI transcript."""

    def __init__(self, total: int, interval: float = 10.0) -> None:
        self.total, self.interval = total, interval
        self.done = 0
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval and self.done < self.total:
            self.last = now
            self._line(now)

    def close(self) -> None:
        self._line(time.monotonic())

    def _line(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate else 0.0
        progress_log.info("indexed %d/%d files (%.1f files/s, %s %s)", self.done, self.total,
                          rate, "ETA" if self.done < self.total else "took",
                          _clock(left if self.done < self.total else elapsed))


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _progress_bar(total: int, enabled: bool):
    """A bar on a terminal, else periodic log lines; nothing when disabled or idle."""
    if not enabled or total == 0:
        return _NoProgress()
    if not sys.stderr.isatty():
        return _LogProgress(total)
    from tqdm import tqdm

    return tqdm(total=total, unit="file", dynamic_ncols=True, smoothing=0.1)
