"""Which Milvus answers, and what that changes: one object per kind of backend.

`connect(uri)` picks it once: a path ending in `.db` is an embedded Milvus Lite database
(`LiteBackend`), `http(s)://host:port` a Milvus server, `ServerBackend` from version 2.4
(search grouping, INVERTED scalar index), `LegacyServerBackend` before. The same
`MilvusClient` code serves all three; a backend answers only what differs: the default
vector index, the search parameters, and how to search with one hit per group.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from revsearch.errors import DatabaseError
from revsearch.store import lite

RECOVERY = ("Recovery: run `revsearch index` again on the same folders (it re-indexes what "
            "is missing), or move the database aside and re-index from the images.")

# Reads see this client's own writes (an ingest's checks, a search right after an index
# call) without Strong consistency's wait for the server's next time tick, which made
# every search and lookup on a server slow (bench/bench_lfw.py --server). Milvus Lite
# answers at once either way.
READ = {"consistency_level": "Session"}

# Milvus's cap on a search's limit.
MAX_LIMIT = 16384

# Runs one k-NN request: (vectors, limit, **search keywords) -> hit lists, one per vector.
RawSearch = Callable[..., list]


def hnsw_index(m: int = 16, ef_construction: int = 200) -> dict:
    """Index parameters of a server face collection (config.Settings.hnsw_*)."""
    return {"index_type": "HNSW", "params": {"M": m, "efConstruction": ef_construction}}


def is_server_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "grpc://"))


@dataclass(frozen=True)
class LiteBackend:
    """Milvus Lite: exact search, grouping by the database, one process per database."""

    path: Path
    is_lite = True
    # Lite builds indexes when it loads a collection and reports them finished at once;
    # pymilvus's wait for an index sleeps before it asks, on every index of a new space.
    index_wait = False

    def vector_index(self) -> dict:
        # Exact search: Lite's HNSW can miss hits under a filter, and at the sizes Lite
        # is for, brute force over face vectors takes milliseconds.
        return {"index_type": "FLAT"}

    def group_index(self) -> dict | None:
        """The index on the field hits are grouped by (None: none)."""
        return {"index_type": "INVERTED"}

    def search_params(self, metric: str, search_ef: int | None, limit: int) -> dict:
        params: dict = {"metric_type": metric}
        if search_ef:
            params["params"] = {"ef": max(search_ef, limit)}
        return params

    def search_grouped(self, search: RawSearch, vectors: np.ndarray, k: int,
                       group: str) -> list[list[dict]]:
        return search(vectors, k, group_by_field=group)

    def close(self) -> None:
        lite.release(self.path)


@dataclass(frozen=True)
class ServerBackend:
    """A Milvus server from 2.4: HNSW, grouping by the server."""

    version: tuple[int, int]
    is_lite = False
    index_wait = True

    def vector_index(self) -> dict:
        return hnsw_index()

    def group_index(self) -> dict | None:
        return {"index_type": "INVERTED"}

    def search_params(self, metric: str, search_ef: int | None, limit: int) -> dict:
        ef = max(search_ef, limit) if search_ef else max(64, 2 * limit)
        return {"metric_type": metric, "params": {"ef": ef}}

    def search_grouped(self, search: RawSearch, vectors: np.ndarray, k: int,
                       group: str) -> list[list[dict]]:
        return search(vectors, k, group_by_field=group)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class LegacyServerBackend(ServerBackend):
    """A Milvus server before 2.4: no `group_by_field`, no INVERTED index."""

    def group_index(self) -> dict | None:
        return None

    def search_grouped(self, search: RawSearch, vectors: np.ndarray, k: int,
                       group: str) -> list[list[dict]]:
        return [group_client_side(search, v, k, group) for v in vectors]


def group_client_side(search: RawSearch, vector: np.ndarray, k: int,
                      group: str) -> list[dict]:
    """The best hit of each of the k best groups, fetching more hits until k groups are
    found (or none are left)."""
    limit = max(4 * k, 64)
    while True:
        limit = min(limit, MAX_LIMIT)
        hits = search(vector[None], limit)[0]
        best: dict[str, dict] = {}
        for hit in hits:  # best first, so the first hit seen per group wins
            best.setdefault(hit["entity"][group], hit)
        if len(best) >= k or len(hits) < limit or limit == MAX_LIMIT:
            return list(best.values())[:k]
        limit *= 4


Backend = LiteBackend | ServerBackend


def connect(uri: str) -> tuple[Any, Backend]:
    """A `MilvusClient` on `uri` and the backend it reached."""
    if is_server_uri(uri):
        client = _client(uri, uri)
        return client, server_backend(server_version(client))
    path = lite.database_path(uri)
    lite.check_lock(path)
    try:
        return _client(str(path), uri), LiteBackend(path)
    except DatabaseError:
        lite.check_lock(path)  # say so if another process took it meanwhile
        raise


def import_pymilvus() -> ModuleType:
    """pymilvus, imported the one way revsearch imports it: with gRPC's fork handlers off
    unless the environment already says otherwise.

    gRPC reads that setting once, when it is first imported. Ingest starts processes
    while Milvus' gRPC threads run (Milvus Lite's server runs in this process; Ray starts
    its raylet through a fork with a pre-exec hook), and with the handlers on such a
    child sometimes hangs before it can exec: `--engine ray` then timed out starting Ray.
    No forked child of revsearch uses gRPC, which is all the handlers are for."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    import pymilvus

    return pymilvus


def _client(address: str, uri: str) -> Any:
    MilvusClient = import_pymilvus().MilvusClient

    try:
        return MilvusClient(uri=address)
    except Exception as exc:
        raise DatabaseError(f"cannot open the database {uri}: {exc}") from exc


def server_backend(version: tuple[int, int]) -> ServerBackend:
    # Milvus 2.4 added search grouping and the INVERTED scalar index.
    return (ServerBackend if version >= (2, 4) else LegacyServerBackend)(version)


def server_version(client: Any) -> tuple[int, int]:
    try:
        text = str(client.get_server_version()).lstrip("v")
        major, minor = (int(p) for p in text.split(".")[:2])
        return (major, minor)
    except Exception:  # unknown: assume an old server, which costs only speed
        return (2, 0)


@contextlib.contextmanager
def database_errors(uri: str) -> Iterator[None]:
    """Turn the database's own failures (unreadable files, lost server) into one clear
    DatabaseError that says how to recover."""
    MilvusException = import_pymilvus().MilvusException
    try:
        yield
    except MilvusException as exc:
        reason = str(getattr(exc, "message", "") or exc).splitlines()[0][:300]
        raise DatabaseError(f"the database {uri} failed: {reason}. {RECOVERY}") from exc
