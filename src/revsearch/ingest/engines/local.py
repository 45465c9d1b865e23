"""The local engine: worker processes on this machine, one per core (the default)."""

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

from revsearch.config import Settings
from revsearch.faces.pipeline import Pipeline
from revsearch.ingest.mapper import analyze_file, worker_pipeline
from revsearch.ingest.records import IngestError, Outcome, Problem, Task

log = logging.getLogger(__name__)

_worker_pipeline: Pipeline | None = None


class LocalEngine:
    """`map_files` as an engine (see revsearch.ingest.engines)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def map(self, tasks: Sequence[Task], pipeline: Pipeline | None = None) -> Iterable[Outcome]:
        return map_files(tasks, self.settings, pipeline)


def _init_worker(settings: Settings) -> None:
    global _worker_pipeline
    _exit_with_parent()
    _worker_pipeline = worker_pipeline(settings)


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
