"""One space's people collections: persons, their faces' assignments, user feedback.

Created on first write, so a database made before the people view opens unchanged and
reads as "not clustered yet". Every read and write of those rows is here; what they
mean (clustering, names, merges) is `revsearch.people`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from revsearch.store.backend import READ, database_errors
from revsearch.store.collection import _chunks
from revsearch.store.schema import (
    ASSIGNMENTS,
    FILLER,
    LINKS,
    PEOPLE_TABLES,
    PERSONS,
    AssignmentRow,
    LinkRow,
    PersonRow,
    Table,
)

if TYPE_CHECKING:
    from revsearch.store.database import Store

COUNTER = 0  # the persons row that holds the next free person id, not a person


class PeopleCollections:
    """The persons, assignments and links collections of space `key`."""

    def __init__(self, store: Store, key: str, dim: int) -> None:
        self.store, self.key, self.dim = store, key, dim
        self.client = store.client
        self.names = {t.prefix: t.name(key) for t in PEOPLE_TABLES}
        self._ready = False

    # -- collections ---------------------------------------------------------------
    def exists(self) -> bool:
        """Whether this space was ever clustered (its collections exist)."""
        if self._ready:
            return True
        with database_errors(self.store.uri):
            found = all(self.client.has_collection(n) for n in self.names.values())
            if found:
                for name in self.names.values():
                    self.client.load_collection(name)
                self._ready = True
        return found

    def ensure(self) -> None:
        if self._ready:
            return
        with database_errors(self.store.uri):
            for table in PEOPLE_TABLES:
                name = table.name(self.key)
                if not self.client.has_collection(name):
                    # Exact search on person centroids (few rows); the filler otherwise.
                    metric = "L2" if table.vector == FILLER else "COSINE"
                    index = self.client.prepare_index_params()
                    index.add_index(field_name=table.vector, index_type="FLAT",
                                    metric_type=metric)
                    self.client.create_collection(name, schema=table.schema(self.dim),
                                                  consistency_level="Strong")
                    self.client.create_index(name, index, sync=self.store.backend.index_wait)
                self.client.load_collection(name)
        self._ready = True

    # -- reads ---------------------------------------------------------------------
    def persons(self) -> list[PersonRow]:
        return [PERSONS.from_db(r) for r in self._all(PERSONS) if r["person_id"] != COUNTER]

    def next_free(self, floor: int = 1) -> int:
        """The next person id never handed out (ids removed by a merge are not
        reused), at least `floor`; kept in the persons row with id 0."""
        [row] = self.persons_by_id([COUNTER], counter=True) or [None]
        return max(row.size if row else 1, floor, 1)

    def set_next_free(self, value: int) -> None:
        self.put_persons([PersonRow(person_id=COUNTER, name="(next person id)", size=value,
                                    centroid=np.zeros(self.dim, np.float32))])

    def person(self, person_id: int) -> PersonRow | None:
        found = self.persons_by_id([int(person_id)])
        return found[0] if found else None

    def persons_by_id(self, person_ids: Sequence[int], counter: bool = False) -> list[PersonRow]:
        person_ids = [p for p in person_ids if counter or int(p) != COUNTER]
        if not self.exists() or not person_ids:
            return []
        out = []
        with database_errors(self.store.uri):
            for chunk in _chunks(sorted({int(p) for p in person_ids}), 1000):
                rows = self.client.get(self.names["persons"], ids=chunk, **READ,
                                       output_fields=PERSONS.names)
                out += [PERSONS.from_db(r) for r in rows]
        return out

    def assignments(self) -> list[AssignmentRow]:
        return [ASSIGNMENTS.from_db(r) for r in self._all(ASSIGNMENTS)]

    def assignments_of(self, person_ids: Sequence[int]) -> list[AssignmentRow]:
        if not self.exists() or not person_ids:
            return []
        where = f"person_id in {json.dumps([int(p) for p in person_ids])}"
        return [ASSIGNMENTS.from_db(r) for r in self._query(ASSIGNMENTS, where)]

    def assignments_in(self, media_ids: Sequence[str]) -> list[AssignmentRow]:
        """The assignments of every face and track of these photos and videos."""
        if not self.exists() or not media_ids:
            return []
        out = []
        for chunk in _chunks(list(media_ids), 500):
            out += [ASSIGNMENTS.from_db(r) for r in
                    self._query(ASSIGNMENTS, f"media_id in {json.dumps(chunk)}")]
        return out

    def assignments_for(self, item_ids: Sequence[str]) -> list[AssignmentRow]:
        if not self.exists() or not item_ids:
            return []
        out = []
        with database_errors(self.store.uri):
            for chunk in _chunks(list(item_ids), 1000):
                rows = self.client.get(self.names["assignments"], ids=chunk, **READ,
                                       output_fields=ASSIGNMENTS.names)
                out += [ASSIGNMENTS.from_db(r) for r in rows]
        return out

    def links(self) -> list[LinkRow]:
        return [LINKS.from_db(r) for r in self._all(LINKS)]

    def _all(self, table: Table) -> Iterator[dict]:
        if not self.exists():
            return
        with database_errors(self.store.uri):
            iterator = self.client.query_iterator(table.name(self.key), batch_size=4000,
                                                  output_fields=table.names)
            try:
                while batch := iterator.next():
                    yield from batch
            finally:
                iterator.close()

    def _query(self, table: Table, where: str) -> list[dict]:
        with database_errors(self.store.uri):
            return self.client.query(table.name(self.key), filter=where, **READ,
                                     output_fields=table.names)

    # -- writes --------------------------------------------------------------------
    def put_persons(self, rows: Iterable[PersonRow]) -> None:
        self._upsert(PERSONS, rows)

    def put_assignments(self, rows: Iterable[AssignmentRow]) -> None:
        self._upsert(ASSIGNMENTS, rows)

    def put_links(self, rows: Iterable[LinkRow]) -> None:
        self._upsert(LINKS, rows)

    def delete_persons(self, person_ids: Sequence[int]) -> None:
        if person_ids:
            self.ensure()
            with database_errors(self.store.uri):
                for chunk in _chunks([int(p) for p in person_ids], 1000):
                    self.client.delete(self.names["persons"], ids=chunk)

    def delete_assignments(self, item_ids: Sequence[str]) -> None:
        if item_ids:
            self.ensure()
            with database_errors(self.store.uri):
                for chunk in _chunks(list(item_ids), 1000):
                    self.client.delete(self.names["assignments"], ids=chunk)

    def _upsert(self, table: Table, rows: Iterable[object]) -> None:
        self.ensure()
        with database_errors(self.store.uri):
            for chunk in _chunks((table.to_db(r) for r in rows), 2000):
                self.client.upsert(table.name(self.key), chunk)

    def flush(self) -> None:
        if self._ready:
            with database_errors(self.store.uri):
                for name in self.names.values():
                    self.client.flush(name)


def copy_people(src: PeopleCollections, dst: PeopleCollections) -> dict[str, int]:
    """Copy the persons, assignments and links of one space (nothing if never clustered)."""
    counts = {}
    for table in PEOPLE_TABLES:
        rows = [table.from_db(r) for r in src._all(table)]
        if rows:
            dst._upsert(table, rows)
        counts[table.prefix] = len(rows)
    dst.flush()
    return counts

