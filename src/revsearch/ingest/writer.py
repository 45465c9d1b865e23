"""Writer: batch rows into the store, each file's marker row after its faces.

That order is what makes a killed ingest resumable (see `revsearch.store`).
"""

from __future__ import annotations

import time

from revsearch.ingest.records import Outcome
from revsearch.store import FaceRow, MediaRow, SpaceCollections, TrackRow


class Writer:
    """Buffers outcomes and writes them in batches (fewer, larger database calls)."""

    def __init__(self, collection: SpaceCollections, batch_images: int = 64,
                 max_seconds: float = 2.0, known: set[str] | None = None) -> None:
        """`known`: image ids that may have face rows already; None means any may."""
        self.collection = collection
        self.known = known
        self.batch_images = batch_images
        self.max_seconds = max_seconds
        self._images: list[MediaRow] = []
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


