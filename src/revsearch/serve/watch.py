"""Watched folders: indexed at start, then kept current as files come, change and go.

File-system notifications (the `watchdog` package: inotify, FSEvents, ReadDirectoryChangesW)
say which folders changed; once a folder has been quiet for `quiet` seconds (a copy in
progress fires many events) the folders that changed are submitted as one sync job,
which indexes new and changed files and forgets deleted ones, as `revsearch index
--sync` would. Notifications can be missed (network shares, an overflowing inotify
queue), so every `interval` seconds all watched folders are rescanned too; a rescan of
an unchanged folder costs one `stat` per file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)

# What a file's writer does. Our own ingest opening and reading files must not count,
# or each job would trigger the next.
_CHANGES = {"created", "modified", "deleted", "moved", "closed"}

Submit = Callable[[list[str]], object]


class Watcher:
    """Keeps `roots` indexed through `submit(paths)` (which queues a sync job)."""

    def __init__(self, roots: Sequence[Path], submit: Submit, *, interval: float = 300.0,
                 quiet: float = 1.0) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        self.submit, self.interval, self.quiet = submit, interval, quiet
        self._pending: set[Path] = set()
        self._last_event = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Index every root now, then follow notifications and rescan periodically."""
        self.submit([str(r) for r in self.roots])
        self._observer = Observer()
        handler = _Handler(self._changed)
        for root in self.roots:
            self._observer.schedule(handler, str(root), recursive=True)
        self._observer.start()
        self._thread = threading.Thread(target=self._loop, name="watch", daemon=True)
        self._thread.start()
        log.info("watching %s (rescan every %s s)", ", ".join(map(str, self.roots)),
                 self.interval or "never")

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(10)
        if self._thread is not None:
            self._thread.join(10)

    def _changed(self, path: str) -> None:
        """Note the folder to rescan for a changed path: the parent of a file, or of a
        folder (a deleted or moved one must be forgotten by a scan of its parent)."""
        folder = self._existing_folder(Path(path).parent)
        if folder is None:
            return
        with self._lock:
            self._pending.add(folder)
            self._last_event = time.monotonic()

    def _existing_folder(self, folder: Path) -> Path | None:
        """`folder` or its nearest existing ancestor inside a watched root."""
        root = next((r for r in self.roots if folder == r or r in folder.parents), None)
        if root is None:
            return None
        while folder != root and not folder.is_dir():
            folder = folder.parent
        return folder

    def _loop(self) -> None:
        last_rescan = time.monotonic()
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                ready = self._pending and now - self._last_event >= self.quiet
                folders = _outermost(self._pending) if ready else []
                if ready:
                    self._pending.clear()
            if folders:
                self._submit([str(f) for f in folders])
            if self.interval and now - last_rescan >= self.interval:
                last_rescan = now
                self._submit([str(r) for r in self.roots])

    def _submit(self, paths: list[str]) -> None:
        try:
            self.submit(paths)
        except Exception:  # a refused job must not end the watching
            log.exception("could not queue the rescan of %s", ", ".join(paths))


def _outermost(folders: set[Path]) -> list[Path]:
    """The folders not inside another of them: a scan of a folder covers its subfolders."""
    return sorted(f for f in folders if not any(o in f.parents for o in folders))


class _Handler(FileSystemEventHandler):
    def __init__(self, changed: Callable[[str], None]) -> None:
        super().__init__()
        self._changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGES:
            return
        if event.is_directory and event.event_type == "modified":
            return  # its entries changed: their own events say which
        self._changed(_text(event.src_path))
        if event.event_type == "moved":
            self._changed(_text(event.dest_path))


def _text(path: str | bytes) -> str:
    return path.decode() if isinstance(path, bytes) else path
