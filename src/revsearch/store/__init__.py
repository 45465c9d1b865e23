"""The vector store: one embedding space's faces, tracks and media rows in Milvus.

- `schema`: the row types, each field declared once, and the collections they make;
- `backend`: Milvus Lite, a server, or a server before 2.4, chosen once from the URI
  (`lite`: the one place that touches milvus_lite's private API);
- `database`: `Store`, an open database holding any number of spaces;
- `collection`: `SpaceCollections`, one space's collections: writes, integrity, reads;
- `search`: k-NN with one hit per photo or video.
"""

from revsearch.store.backend import database_errors, hnsw_index, is_server_uri
from revsearch.store.collection import SpaceCollections, copy_space
from revsearch.store.database import Store
from revsearch.store.schema import (
    FaceRow,
    MediaRow,
    TrackRow,
    face_id_for,
    image_id_for,
    track_row_id,
)
from revsearch.store.search import FaceHit

__all__ = ["FaceHit", "FaceRow", "MediaRow", "SpaceCollections", "Store", "TrackRow",
           "copy_space", "database_errors", "face_id_for", "hnsw_index", "image_id_for",
           "is_server_uri", "track_row_id"]
