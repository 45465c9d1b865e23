"""revsearch: reverse visual search of people in photo (and video) collections.

The public API is in `revsearch.api` and re-exported here; see its docstring.
"""

from revsearch.api import RevSearch, connect, index, migrate, search
from revsearch.errors import (
    DatabaseError,
    DatabaseLockedError,
    MediaError,
    ModelFileError,
    NoFaceError,
    RevsearchError,
)
from revsearch.search import Hit, QueryFace, SearchResult

__version__ = "0.1.0"

__all__ = [
    "DatabaseError",
    "DatabaseLockedError",
    "Hit",
    "MediaError",
    "ModelFileError",
    "NoFaceError",
    "QueryFace",
    "RevSearch",
    "RevsearchError",
    "SearchResult",
    "connect",
    "index",
    "migrate",
    "search",
]
