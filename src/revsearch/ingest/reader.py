"""Reader: walk the folders, tell media by content, decide what needs (re)processing.

Unchanged files cost one `stat`: size and mtime first, then the content hash.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from revsearch.ingest.records import LABEL_MODES, Plan, Problem, Task
from revsearch.media import content_hash, sniff, walk
from revsearch.store import MediaRow
from revsearch.video.frames import is_frame_folder, stat_video, video_digest


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
                plan.touched.append(MediaRow(**{**row, "size": size, "mtime_ns": mtime_ns}))
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


