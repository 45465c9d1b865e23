"""Ingest: reader -> mapper -> writer.

- reader (`reader.scan`): walks the folders, tells media from other files by content, and
  compares each file with what the index holds (size and mtime first, then the content
  hash), so unchanged files cost one `stat`.
- mapper (`mapper.analyze_file`): decode, detect every face, align, embed; for a video,
  also link faces into tracks and aggregate each. Runs on an engine (`engines`): worker
  processes on this machine (one per core), or Ray actors across machines; each worker
  has its own models and one inference thread.
- writer (`writer.Writer`): batches rows into the store; the image marker goes in after
  its faces, which is what makes a killed ingest resumable.
- `run.run_ingest` puts them together.
"""

from revsearch.ingest.engines import ENGINES, engine_for
from revsearch.ingest.engines.local import map_files
from revsearch.ingest.mapper import analyze_file, analyze_video
from revsearch.ingest.reader import label_for, scan
from revsearch.ingest.records import (
    LABEL_MODES,
    IngestError,
    IngestReport,
    Outcome,
    Plan,
    Problem,
    Task,
)
from revsearch.ingest.run import run_ingest
from revsearch.ingest.writer import Writer

__all__ = ["ENGINES", "LABEL_MODES", "IngestError", "IngestReport", "Outcome", "Plan",
           "Problem", "Task", "Writer", "analyze_file", "analyze_video", "engine_for",
           "label_for", "map_files", "run_ingest", "scan"]
