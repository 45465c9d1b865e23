"""Persons in search: a person's media as results, and the person of each hit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from revsearch.people.book import PeopleBook, Person
from revsearch.people.graph import track_key
from revsearch.search import TARGETS, Hit, SearchResult


@dataclass
class PersonSearch:
    """The photos and videos of one person (`hits`, one per file, its most typical
    face first; `similarity` is to the person's mean, `match` is None: membership comes
    from the clustering, not from a threshold)."""

    person: Person
    hits: list[Hit]


def person_media(book: PeopleBook, ref: int | str, k: int | None = None,
                 target: str = "all") -> PersonSearch:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose from {TARGETS}")
    if k is not None and k < 1:
        raise ValueError("k must be at least 1")
    ids = book.resolve(ref)
    persons = [book.person(pid) for pid in ids]
    best: dict[str, Hit] = {}
    for person in persons:
        for item in person.items or []:
            kind = "video" if item.kind == "track" else "image"
            if target != "all" and target != kind + "s":
                continue
            sim = item.similarity if item.similarity is not None else 0.0
            if item.media_id in best and best[item.media_id].similarity >= sim:
                continue
            best[item.media_id] = Hit(
                rank=0, path=item.path, image_id=item.media_id, face_id=item.item_id,
                face_index=item.index, box=item.box, similarity=sim, match=None,
                label=item.label, media_type=kind, person_id=person.person_id,
                person=person.name)
    hits = sorted(best.values(), key=lambda h: -h.similarity)[:k]
    for rank, hit in enumerate(hits, start=1):
        hit.rank = rank
    if len(persons) > 1:  # several persons share the name: one view of all
        first = persons[0]
        first.faces = sum(p.faces for p in persons)
        first.media = len({h.image_id for h in best.values()})
    return PersonSearch(persons[0], hits)


def annotate_persons(book: PeopleBook, results: Sequence[SearchResult]) -> None:
    """Mark each hit with its face's person, and each result with the top hit's person
    when that hit is a match (nothing when the index has no persons)."""
    if not results or not book.clustered():
        return
    def item(h: Hit) -> str:
        return track_key(h.face_id) if h.media_type == "video" else h.face_id

    found = book.person_of([item(h) for r in results for h in r.hits])
    for result in results:
        for hit in result.hits:
            if item(hit) in found:
                hit.person_id, hit.person = found[item(hit)]
        top = result.hits[0] if result.hits else None
        if top is not None and top.match and top.person_id is not None:
            result.person_id, result.person = top.person_id, top.person
