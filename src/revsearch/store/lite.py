"""Milvus Lite: an embedded database in a `.db` folder, one process at a time.

pymilvus starts Lite's in-process server through `milvus_lite.server_manager` and offers
no way to ask whether this process holds a database already, nor to stop its server on
close. `_servers()` is the one place that reaches into milvus_lite for both;
tests/test_store_unit.py fails loudly if that private API changes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from revsearch.errors import DatabaseError, DatabaseLockedError


def _servers() -> Any:
    """milvus_lite's registry of the servers this process runs, one per database path."""
    from milvus_lite.server_manager import server_manager_instance

    return server_manager_instance


def open_here(path: Path) -> bool:
    """Whether this process has the database at `path` open already."""
    return os.path.abspath(path) in _servers()._servers


def release(path: Path | str) -> None:
    """Stop this process's server for `path`, so another process may open it."""
    _servers().release_server(str(path))


def database_path(uri: str) -> Path:
    """The absolute folder of the Lite database `uri`, its parent created."""
    path = Path(uri).expanduser()
    if path.suffix != ".db":
        raise DatabaseError(f"a Milvus Lite database path must end in .db: {uri}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def check_lock(path: Path) -> None:
    """Fail clearly when another process holds this database."""
    if open_here(path):
        return
    lock = path / "LOCK"
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        raise DatabaseLockedError(
            f"the database {path} is in use by another process (a running `revsearch "
            f"index` or `serve`?). Milvus Lite allows one process per database: wait for "
            f"it to finish, or use a Milvus server with --db http://HOST:19530."
        ) from None
    finally:
        os.close(fd)
