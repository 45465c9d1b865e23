"""What flows between the ingest stages: tasks, outcomes, problems, the report."""

from __future__ import annotations

from dataclasses import dataclass, field

from revsearch.errors import RevsearchError
from revsearch.store import FaceRow, MediaRow, TrackRow

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
    image: MediaRow | None = None
    faces: list[FaceRow] = field(default_factory=list)
    problem: Problem | None = None
    tracks: list[TrackRow] = field(default_factory=list)


@dataclass
class Plan:
    todo: list[Task]
    unchanged: int
    touched: list[MediaRow]
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
    # What placing the new faces into persons did, when the index has persons
    # (`revsearch.people.book.ClusterReport` as a dict); None otherwise.
    people: dict | None = None

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
        if self.people:
            p = self.people
            lines.append(f"people: {p['new']} new faces or tracks, {p['joined']} joined "
                         f"known persons, {p['created']} new persons; {p['seconds']:.2f} s")
        if self.log_path:
            lines.append(f"report: {self.log_path}")
        return "\n".join(lines)


