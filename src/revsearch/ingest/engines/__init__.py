"""Ingest engines: where the mapper runs. The driver (revsearch.ingest.run) keeps the
reader and the writer; an engine only turns tasks into outcomes, in any order.

- `local` (the default): worker processes on this machine (`engines.local`);
- `ray`: actors of a Ray cluster, for more than one machine (`engines.ray`; needs the
  `distributed` extra).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from revsearch.config import ENGINES, Settings
from revsearch.faces.pipeline import Pipeline
from revsearch.ingest.records import Outcome, Task


class Engine(Protocol):
    def map(self, tasks: Sequence[Task], pipeline: Pipeline | None = None) -> Iterable[Outcome]:
        """Analyse every task; yield one outcome per task, in any order. `pipeline`:
        models the caller has loaded already, for engines that can use them."""
        ...


def engine_for(settings: Settings, *, lite: bool) -> Engine:
    """The engine the settings name, checked before any file is read (`lite`: the store
    is a Milvus Lite file, which only an engine on this machine may feed)."""
    if settings.engine == "ray":
        from revsearch.ingest.engines.ray import RayEngine

        return RayEngine(settings, lite=lite)
    if settings.engine == "local":
        from revsearch.ingest.engines.local import LocalEngine

        return LocalEngine(settings)
    raise ValueError(f"unknown engine {settings.engine!r}; choose from {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Engine", "engine_for"]
