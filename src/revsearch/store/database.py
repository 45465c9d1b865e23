"""A Milvus database (Lite file or server) holding one or more embedding spaces."""

from __future__ import annotations

import contextlib

from revsearch.store.backend import connect
from revsearch.store.collection import SpaceCollections
from revsearch.store.schema import FACES


class Store:
    """A Milvus database holding the faces, tracks and media of embedding spaces."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.client, self.backend = connect(uri)

    @property
    def is_lite(self) -> bool:
        return self.backend.is_lite

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- spaces --------------------------------------------------------------------
    def space(self, key: str, dim: int, metric: str = "COSINE",
              index_params: dict | None = None,
              search_ef: int | None = None) -> SpaceCollections:
        """The collections of embedding space `key`, created on first use."""
        return SpaceCollections(self, key, dim, metric, index_params, search_ef)

    def list_spaces(self) -> list[str]:
        prefix = FACES.name("")
        return sorted(n[len(prefix):] for n in self.client.list_collections()
                      if n.startswith(prefix))

    def open_space(self, key: str) -> SpaceCollections:
        """An existing space, with the dimension and metric it was created with."""
        name = FACES.name(key)
        desc = self.client.describe_collection(name)
        dim = next(int(f["params"]["dim"]) for f in desc["fields"] if f["name"] == "embedding")
        index = self.client.describe_index(name, "embedding")
        return SpaceCollections(self, key, dim, index.get("metric_type", "COSINE"))
