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
    NotFoundError,
    RevsearchError,
)
from revsearch.listing import MediaFace, MediaItem, MediaTrack
from revsearch.query import Query
from revsearch.search import Hit, QueryFace, QueryTrack, SearchResult, Verification

__version__ = "0.1.0"

__all__ = [
    "DatabaseError",
    "DatabaseLockedError",
    "Hit",
    "MediaError",
    "MediaFace",
    "MediaItem",
    "MediaTrack",
    "ModelFileError",
    "NoFaceError",
    "NotFoundError",
    "Query",
    "QueryFace",
    "QueryTrack",
    "RevSearch",
    "RevsearchError",
    "SearchResult",
    "Verification",
    "connect",
    "index",
    "migrate",
    "search",
]
