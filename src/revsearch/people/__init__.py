"""People: every face and face track of a space grouped into persons, named by the user.

- `graph`: the k-nearest-neighbour graph of faces and tracks, from the vector index;
- `cluster`: the clustering methods over that graph, one signature each;
- `book`: `PeopleBook`, the persons of a space: (re)clustering, incremental placement
  of new faces, names, merges and "not this person" feedback, kept in Milvus
  (`revsearch.store.people`);
- `search`: a person's media as search results, and the person of each search hit.
"""

from revsearch.people.book import (
    DEFAULT_METHOD,
    ClusterReport,
    PeopleBook,
    Person,
    PersonItem,
)
from revsearch.people.cluster import METHODS
from revsearch.people.search import PersonSearch, annotate_persons, person_media

__all__ = ["DEFAULT_METHOD", "METHODS", "ClusterReport", "PeopleBook", "Person", "PersonItem",
           "PersonSearch", "annotate_persons", "person_media"]
