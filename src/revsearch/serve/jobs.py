"""Background ingest jobs: a queue, one job at a time, each with its progress and problems.

Jobs run one after another on one thread of the server process, through the server's
own `RevSearch.index`: Milvus Lite allows one process per database, and one writer at a
time keeps the index's write order (faces, then the file's marker) intact. Searches are
answered meanwhile from the request threads.

Which folders a client may name is decided here too (`Roots`): the watched and allowed
folders, after resolving symlinks, so a link inside them cannot lead out.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from revsearch.errors import NotFoundError, RevsearchError
from revsearch.ingest.records import LABEL_MODES, IngestReport, Problem

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")

class PathRefused(RevsearchError):
    """A job names a path the server may not read (HTTP 403)."""


class PathMissing(RevsearchError):
    """A job names a folder that does not exist (HTTP 404)."""


class JobCancelled(Exception):
    """Raised from the progress callback to stop a running ingest."""


@dataclass
class Job:
    """One ingest: what to index, how far it got, and what could not be indexed."""

    id: str
    paths: list[str]
    labels: str = "auto"
    sync: bool = False
    origin: str = "api"  # "api" (a client), "watch" (the server's own folders)
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None  # when the files to do were known
    finished: float | None = None
    done: int = 0
    total: int | None = None
    problems: list[Problem] = field(default_factory=list)
    report: IngestReport | None = None
    error: str = ""
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def progress(self, done: int, total: int) -> None:
        if self.cancel.is_set():
            raise JobCancelled
        if self.total is None:
            self.started = time.time()
        self.done, self.total = done, total

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    def rate(self) -> float | None:
        """Files per second since the files to do were known."""
        if self.started is None:
            return None
        elapsed = (self.finished or time.time()) - self.started
        return self.done / elapsed if elapsed > 0 else None

    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before the first file is done."""
        rate = self.rate()
        if self.state != "running" or self.total is None or not rate:
            return None
        return (self.total - self.done) / rate


class Jobs:
    """The queue of ingest jobs and the thread that runs them, one at a time.

    `run(job)` does the work and returns its report; the last `keep` finished jobs stay
    listed; the thread and the worker processes it starts run `nice` levels below
    the rest of the server. A job for exactly the same paths and options as one still queued is not
    queued twice (watch events come in bursts).
    """

    def __init__(self, run: Callable[[Job], IngestReport], keep: int = 50,
                 nice: int = 0) -> None:
        self._run = run
        self._keep = keep
        self._nice = nice
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, paths: Sequence[str], *, labels: str = "auto", sync: bool = False,
               origin: str = "api") -> Job:
        if labels not in LABEL_MODES:
            raise ValueError(f"labels must be one of {', '.join(LABEL_MODES)}")
        with self._lock:
            if self._closed:
                raise RevsearchError("the server is shutting down")
            for job in self._jobs.values():
                if (job.state == "queued" and job.paths == list(paths)
                        and (job.labels, job.sync) == (labels, sync)):
                    return job
            job = Job(uuid.uuid4().hex, list(paths), labels, sync, origin)
            self._jobs[job.id] = job
            self._forget_old()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ingest-jobs",
                                                daemon=True)
                self._thread.start()
        self._queue.put(job)
        log.info("job %s queued (%s): %s", job.id, origin, ", ".join(job.paths))
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError("no such job (finished jobs are kept for a while only)")
        return job

    def list(self) -> list[Job]:
        """Every job kept, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def cancel(self, job_id: str) -> Job:
        """Stop a job: a queued one never starts, a running one stops after the file in
        hand (what it wrote stays, consistent); a finished one is left as it is."""
        job = self.get(job_id)
        job.cancel.set()
        with self._lock:
            if job.state == "queued":
                job.state, job.finished = "cancelled", time.time()
        return job

    def idle(self) -> bool:
        return not any(job.active for job in self.list())

    def close(self, timeout: float = 30.0) -> None:
        """Cancel what is queued and running, and wait for the runner to stop."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.active:
                self.cancel(job.id)
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if not j.active]
        for job_id in finished[:max(0, len(finished) - self._keep)]:
            del self._jobs[job_id]

    def _loop(self) -> None:
        if self._nice:
            _lower_priority(self._nice)
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != "queued":
                    continue  # cancelled while queued
                job.state = "running"
            self._execute(job)

    def _execute(self, job: Job) -> None:
        try:
            job.report = self._run(job)
            job.state = "done"
        except JobCancelled:
            job.state = "cancelled"
        except Exception as exc:  # the server goes on; the job says what happened
            if not isinstance(exc, RevsearchError):
                log.exception("job %s failed", job.id)
            job.error = str(exc) or type(exc).__name__
            job.state = "failed"
        job.finished = time.time()
        log.info("job %s %s: %d/%s files, %d problems", job.id, job.state, job.done,
                 job.total, len(job.problems))


def _lower_priority(increment: int) -> None:
    """Lower this thread's CPU priority, and so that of the worker processes it starts
    (they inherit it). Linux only: there the nice value belongs to a thread, so the
    request threads keep theirs; elsewhere it would slow the whole server."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except OSError as exc:
        log.warning("could not lower the ingest's priority: %s", exc)


@dataclass(frozen=True)
class Roots:
    """The folders clients may ask the server to index: watched and allowed ones."""

    folders: tuple[Path, ...]

    @classmethod
    def of(cls, folders: Sequence[str]) -> Roots:
        return cls(tuple(dict.fromkeys(Path(f).expanduser().resolve() for f in folders)))

    def check(self, raw: str, trusted: bool = False) -> str:
        """The path a job may index, resolved; refused if outside every root (unless the
        client is `trusted`: it holds the server's local token) or missing."""
        if not raw or "\x00" in raw:
            raise ValueError("empty or malformed path")
        path = Path(raw).expanduser()
        if not path.is_absolute():
            raise ValueError(f"give absolute paths: {raw!r} is relative")
        resolved = path.resolve()  # follows symlinks: one leading out is caught below
        if not trusted and not any(resolved == r or r in resolved.parents
                                   for r in self.folders):
            where = ("the server's watched and allowed folders (--watch, --allow)"
                     if self.folders else "any folder: the server was started without "
                     "--watch or --allow")
            raise PathRefused(f"{raw} is outside {where}")
        if not resolved.exists():
            raise PathMissing(f"no such file or folder: {raw}")
        return str(resolved)
