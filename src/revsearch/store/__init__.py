"""The vector store: one embedding space's faces, tracks and media rows in Milvus."""

from revsearch.store.milvus import (
    FaceCollection,
    FaceHit,
    FaceRow,
    ImageRow,
    Store,
    TrackRow,
    copy_space,
    database_errors,
    face_id_for,
    hnsw_index,
    image_id_for,
    is_server_uri,
    track_row_id,
)

__all__ = ["FaceCollection", "FaceHit", "FaceRow", "ImageRow", "Store", "TrackRow",
           "copy_space", "database_errors", "face_id_for", "hnsw_index", "image_id_for",
           "is_server_uri", "track_row_id"]
