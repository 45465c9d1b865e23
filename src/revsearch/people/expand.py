"""Person query expansion: a photo query's face placed in its person, and the person's
faces querying together with it.

The query face's person is the person of its own face when the photo is indexed (the
nearest stored face is the same face), else the one its nearest faces vote for at the
clustering threshold, as `PeopleBook.update` places a new face. The person's faces and
the query face are summed into one unit vector (from the person's stored mean, so no
face is read), and each candidate face is scored by a blend of its similarity to the
query face and to that vector. Measured against other rules on LFW retrieval, chosen on
the development people: `revsearch eval people --expansion`
(docs/results/people_expansion.md).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

from revsearch.people.book import PeopleBook
from revsearch.store import FaceHit

log = logging.getLogger(__name__)

# Weight of the person's vector in the blend (the rule `fused_mean_0.75` of the
# measurement): the query face keeps a say, so a wrongly grouped person cannot take
# the ranking over entirely.
WEIGHT = 0.75
# Candidates per query vector: images the plain face or the person's vector rank high.
POOL = 50
# The nearest stored face at least this similar is the query's own face (its photo is
# indexed, or an exact copy of it is).
SAME_FACE = 0.999


@dataclass
class Expansion:
    """The person a query face was placed in, and the vector its faces query with."""

    person_id: int
    vector: np.ndarray  # unit: the person's faces and the query face together
    faces: int  # how many faces that is
    indexed: bool  # the query's own face is in the collection (and in the person)


def place(book: PeopleBook, vector: np.ndarray) -> Expansion | None:
    """The query face's person and expansion vector; None when the face joins no person
    with other faces (then the plain search stands)."""
    if not book.clustered():
        return None
    hits = book.coll.neighbours(np.asarray(vector, np.float32)[None], book.k + 1, "faces")[0]
    if not hits:
        return None
    person_of = {a.item_id: a.person_id for a in book.rows.assignments_for([i for i, _ in hits])}
    indexed = hits[0][1] >= SAME_FACE and hits[0][0] in person_of
    if indexed:
        pid: int | None = person_of[hits[0][0]]
    else:
        votes: dict[int, float] = defaultdict(float)
        for item, sim in hits[:book.k]:
            if sim >= book.threshold and item in person_of:
                votes[person_of[item]] += sim
        pid = max(votes, key=lambda p: (votes[p], -p)) if votes else None
    row = book.rows.person(pid) if pid is not None else None
    if row is None:
        return None
    size = int(row.size)
    total = np.asarray(row.centroid, np.float64) * size
    if not indexed:  # the query face is one of the person's faces too
        total, size = total + vector, size + 1
    if size < 2:
        return None
    norm = float(np.linalg.norm(total))
    if norm <= 0:
        return None
    return Expansion(int(pid), (total / norm).astype(np.float32), size, indexed)


def rerank(book: PeopleBook, vector: np.ndarray, expansion: Expansion, k: int,
           exclude_hash: str = "") -> list[FaceHit]:
    """The k best photos for the face and its person together: candidates from both
    searches, each photo ranked by the blend on its best candidate face. Each hit's
    `similarity` stays the query face's own cosine (what `match` is judged on);
    `extra["expanded_score"]` holds the blend it was ranked by."""
    coll = book.coll
    pool = max(k, POOL)
    plain, via_person = coll.search(np.stack([vector, expansion.vector]).astype(np.float32),
                                    pool, exclude_hash)
    candidates = {h.face_id: h for h in [*via_person, *plain]}  # plain hit wins a tie
    rows = {r["face_id"]: np.asarray(r["embedding"], np.float32)
            for r in coll.faces_by_id(list(candidates))}
    best: dict[str, tuple[float, FaceHit]] = {}
    for face_id, hit in candidates.items():
        emb = rows.get(face_id)
        if emb is None:
            continue
        own = float(emb @ vector)
        blend = (1 - WEIGHT) * own + WEIGHT * float(emb @ expansion.vector)
        if hit.image_id not in best or blend > best[hit.image_id][0]:
            best[hit.image_id] = (blend, replace(hit, similarity=own, extra={
                **hit.extra, "expanded_score": blend}))
    ranked = sorted(best.values(), key=lambda p: -p[0])[:k]
    return [h for _, h in ranked]
