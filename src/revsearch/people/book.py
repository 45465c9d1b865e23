"""The persons of one space: cluster everything, add new faces, names, merges, feedback.

A person is a cluster of faces (and video face tracks) with a stable id and maybe a name.
`recluster()` clusters every item from scratch on the k-NN graph, then gives each new
cluster the id (and name) of the old person it overlaps most, so ids and names survive.
`update()` (run after each ingest) only places what is new: a new face joins the person
whose mean it is closest to among its neighbours' persons, when close enough; the rest
are clustered among themselves into new persons. User feedback is stored as links
between faces, so it holds through any re-clustering: a merge is a must-link between the
two persons' representative faces, "not this person" a cannot-link between the face and
the person's representative faces.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from revsearch.errors import NotFoundError, PeopleError
from revsearch.people import cluster
from revsearch.people.graph import (
    Items,
    build_graph,
    graph_from_lists,
    neighbour_lists,
    track_key,
)
from revsearch.store import SpaceCollections
from revsearch.store.people import PeopleCollections
from revsearch.store.schema import AssignmentRow, LinkRow, PersonRow

log = logging.getLogger(__name__)

DEFAULT_METHOD = "chinese_whispers"
DEFAULT_K = 30
# Clustering thresholds per space and method, chosen on LFW's development people
# (pairsDevTrain) by `revsearch eval people` (docs/results/people_lfw.md). A clustering
# threshold is not the match threshold: single links at the match threshold chain
# nearly everyone together.
THRESHOLDS: dict[str, dict[str, float]] = {
    "sface": {"chinese_whispers": 0.55, "components": 0.55, "centroid": 0.575,
              "dbscan": 0.55, "rank_order": 0.525},
}
MAX_NAME = 200
ANCHORS = 3  # faces of a person a "not this person" face is kept apart from


@dataclass
class PersonItem:
    """One face (photo) or face track (video) of a person."""

    item_id: str
    kind: str  # "face" or "track"
    media_id: str
    index: int  # the face's number in its photo, or the track's in its video
    path: str = ""
    label: str = ""
    box: list[float] = field(default_factory=list)
    similarity: float | None = None  # to the person's mean


@dataclass
class Person:
    """A person: `faces` counts its faces and tracks, `media` its photos and videos."""

    person_id: int
    name: str
    name_source: str  # "user", "label" (from folder labels) or "" (unnamed)
    faces: int
    media: int
    cover: PersonItem | None  # the representative face
    items: list[PersonItem] | None = None  # filled by `PeopleBook.person`
    paths: list[str] | None = None  # its media, filled on request


@dataclass
class ClusterReport:
    method: str
    threshold: float
    items: int  # faces and tracks clustered (or placed)
    persons: int  # persons afterwards
    new: int = 0  # update(): new items placed
    joined: int = 0  # ... of which joined an existing person
    created: int = 0  # persons created
    removed: int = 0  # assignments of deleted faces dropped
    seconds: float = 0.0


def parse_item(item_id: str) -> tuple[str, int]:
    """(media id, face or track number) of a face id or track key."""
    media, number = item_id.rsplit("_", 1)
    return media, int(number)


def norm_name(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).casefold()


def default_threshold(space_key: str, method: str) -> float:
    found = THRESHOLDS.get(space_key, {}).get(method)
    if found is None:
        raise PeopleError(
            f"no clustering threshold is known for space {space_key} and method {method}: "
            f"pass --people-threshold (measure one with `revsearch eval people --space "
            f"{space_key}`)")
    return found


class PeopleBook:
    """The persons of one space, kept in its people collections."""

    def __init__(self, collection: SpaceCollections, method: str = DEFAULT_METHOD,
                 threshold: float | None = None, k: int = DEFAULT_K) -> None:
        if method not in cluster.METHODS:
            raise PeopleError(f"unknown clustering method {method!r}; choose from "
                                 f"{', '.join(cluster.METHODS)}")
        self.coll = collection
        self.method = method
        self._threshold = threshold
        self.k = k
        self.rows = PeopleCollections(collection.store, collection.key, collection.dim)

    @property
    def threshold(self) -> float:
        if self._threshold is None:
            self._threshold = default_threshold(self.coll.key, self.method)
        return self._threshold

    def clustered(self) -> bool:
        return self.rows.exists()

    # -- clustering ------------------------------------------------------------------
    def recluster(self) -> ClusterReport:
        """Cluster every face and track from scratch; ids and names carry over to the
        new clusters that overlap the old persons most; feedback links are applied."""
        started = time.monotonic()
        threshold = self.threshold
        items = self._load_all()
        graph = build_graph(self.coll, items, self.k)
        labels = cluster.run(self.method, graph, threshold, vectors=items.vectors)
        labels = self._with_links(items, labels)
        old_people = {p.person_id: p for p in self.rows.persons()}
        old = {a.item_id: a.person_id for a in self.rows.assignments()}
        start = self.rows.next_free(max(old_people, default=0) + 1)
        ids = _match(labels, [old.get(i) for i in items.ids], start)
        self.rows.set_next_free(max([start - 1, *ids]) + 1)
        members = _members(ids)
        # Only what changed is written: a re-clustering mostly keeps every face where
        # it was, and each write costs.
        moved = [n for n, (i, p) in enumerate(zip(items.ids, ids, strict=True))
                 if old.get(i) != p]
        touched = {ids[n] for n in moved} | {old[items.ids[n]] for n in moved
                                             if items.ids[n] in old}
        known = set(items.ids)
        gone = [i for i in old if i not in known]
        touched |= {old[i] for i in gone}
        persons = [self._person_row(pid, items, rows, old_people.get(pid))
                   for pid, rows in members.items()
                   if pid in touched or pid not in old_people]
        self.rows.put_persons(persons)
        self.rows.put_assignments(
            AssignmentRow(item_id=items.ids[n], person_id=int(ids[n]), media_id=items.media[n],
                          kind=items.kinds[n]) for n in moved)
        self.rows.delete_assignments(gone)
        kept = set(members)
        dropped = [pid for pid in old_people if pid not in kept]
        for pid in dropped:
            if old_people[pid].name_source == "user":
                log.warning("person %d (%s) has no faces after re-clustering; dropped",
                            pid, old_people[pid].name)
        self.rows.delete_persons(dropped)
        self.rows.flush()
        return ClusterReport(self.method, threshold, len(items), len(members),
                             seconds=time.monotonic() - started)

    def update(self, media: Sequence[str] | None = None) -> ClusterReport:
        """Place faces and tracks added since the last run (cluster everything if never
        clustered); forget the assignments of deleted ones. `media`: the photos and
        videos written or removed since (an ingest knows them), so that nothing else
        is read; without it, every id is compared (two scans of ids)."""
        if not self.clustered():
            return self.recluster()
        started = time.monotonic()
        threshold = self.threshold
        if media is None:
            assigned = {a.item_id: a for a in self.rows.assignments()}
            current = set(self.coll.row_ids("faces"))
            current |= {track_key(r) for r in self.coll.row_ids("tracks")}
            gone = [assigned[i] for i in assigned if i not in current]
            items = self._load(sorted(current - set(assigned)))
        else:  # re-place every face of these files: new, changed or removed ones
            gone = self.rows.assignments_in(sorted(set(media)))
            items = self._load_media(sorted(set(media)))
        people = _People(self.rows)
        changed: set[int] = set()
        if gone:
            self.rows.delete_assignments([a.item_id for a in gone])
            people.fetch({a.person_id for a in gone})
            for a in gone:
                p = people.get(a.person_id)
                if p is not None:
                    p.size -= 1
                    changed.add(p.person_id)
        report = ClusterReport(self.method, threshold, len(items), 0, new=len(items),
                               removed=len(gone))
        if len(items):
            changed |= self._place(items, people, report)
        empty = [pid for pid in changed if people[pid].size <= 0]
        self.rows.delete_persons(empty)
        self.rows.put_persons(people[pid] for pid in changed if pid not in empty)
        self.rows.flush()
        report.persons = len(changed) - len(empty)  # persons touched
        report.seconds = time.monotonic() - started
        return report

    def _place(self, items: Items, people: _People, report: ClusterReport) -> set[int]:
        """Join new items to existing persons, cluster the rest into new persons."""
        threshold = self.threshold
        lists = neighbour_lists(self.coll, items.vectors, self.k, exclude=items.ids)
        neighbour_ids = {j for hits in lists for j, _ in hits} - set(items.ids)
        person_of = {a.item_id: a.person_id
                     for a in self.rows.assignments_for(sorted(neighbour_ids))}
        if self.method == "centroid":
            people.fetch(set(person_of.values()))
        chosen: list[int | None] = []
        for v, hits in zip(items.vectors, lists, strict=True):
            chosen.append(self._join(v, hits, person_of, people, threshold))
        rest = [i for i, p in enumerate(chosen) if p is None]
        changed: set[int] = set()
        if rest:
            sub = items.subset(rest)
            sub_lists = [[(j, s) for j, s in lists[i] if j in set(sub.ids)] for i in rest]
            labels = cluster.run(self.method, graph_from_lists(sub.ids, sub_lists, self.k),
                                 threshold, vectors=sub.vectors)
            start = self.rows.next_free()
            for i, label in zip(rest, labels.tolist(), strict=True):
                chosen[i] = start + int(label)
            report.created = int(labels.max()) + 1
            self.rows.set_next_free(start + report.created)
        report.joined = len(items) - len(rest)
        rows = []
        for i, pid in enumerate(chosen):
            assert pid is not None
            rows.append(AssignmentRow(item_id=items.ids[i], person_id=pid,
                                      media_id=items.media[i], kind=items.kinds[i]))
            changed.add(pid)
        people.fetch(changed)
        for pid in changed:
            members = [i for i, p in enumerate(chosen) if p == pid]
            old = people.get(pid)
            if old is None:
                people[pid] = self._person_row(pid, items, members, None)
            else:
                added = items.vectors[members].sum(0)
                total = old.size + len(members)
                old.centroid = (np.asarray(old.centroid, np.float64) * old.size + added) / total
                old.size = total
        self.rows.put_assignments(rows)
        return changed

    def _join(self, vector: np.ndarray, hits: list[tuple[str, float]],
              person_of: dict[str, int], people: _People,
              threshold: float) -> int | None:
        """The existing person a new item joins, or None."""
        if self.method != "centroid":  # one Chinese-whispers step: neighbours vote
            votes: dict[int, float] = defaultdict(float)
            for j, sim in hits:
                if sim >= threshold and j in person_of:
                    votes[person_of[j]] += sim
            return max(votes, key=lambda p: (votes[p], -p)) if votes else None
        best, best_sim = None, threshold
        for pid in {person_of[j] for j, _ in hits if j in person_of}:
            c = np.asarray(people[pid].centroid, np.float64)
            sim = float(vector @ c / max(np.linalg.norm(c), 1e-12))
            if sim >= best_sim:
                best, best_sim = pid, sim
        return best

    def _with_links(self, items: Items, labels: np.ndarray) -> np.ndarray:
        position = {i: n for n, i in enumerate(items.ids)}
        must, cannot = [], []
        for link in self.rows.links():
            if link.a in position and link.b in position:
                pair = (position[link.a], position[link.b])
                (must if link.kind == "must" else cannot).append(pair)
        return cluster.apply_links(labels, must, cannot)

    def _person_row(self, pid: int, items: Items, members: Sequence[int],
                    old: PersonRow | None, seed: bool = True) -> PersonRow:
        vectors = items.vectors[list(members)]
        centroid = vectors.mean(0)
        unit = centroid / max(float(np.linalg.norm(centroid)), 1e-12)
        cover = items.ids[members[int(np.argmax(vectors @ unit))]]
        # Folder labels name a person once, when it is created; after that the name is
        # the user's to change (a face moved out by hand is not seeded either).
        name, source = (old.name, old.name_source) if old else \
            _label_name([items.labels[i] for i in members]) if seed else ("", "")
        return PersonRow(person_id=int(pid), name=name, name_source=source,
                         created=old.created if old else int(time.time()),
                         size=len(members), cover=cover, centroid=centroid.astype(np.float32))

    # -- loading ---------------------------------------------------------------------
    def _load_all(self) -> Items:
        from revsearch.people.graph import load_items

        return load_items(self.coll)

    def _load_media(self, media: Sequence[str]) -> Items:
        """Every face and track of these photos and videos, with their vectors."""
        ids = [f["face_id"] for f in self.coll.faces_of(media)]
        ids += sorted({track_key(r["row_id"]) for r in self.coll.tracks_of(media)})
        return self._load(ids)

    def _load(self, ids: Sequence[str]) -> Items:
        """These items (face ids, track keys) with their vectors, fetched by id."""
        faces = self.coll.faces_by_id(ids)  # track keys are simply not found there
        out = Items([], [], [], [], np.zeros((0, self.coll.dim), np.float32))
        rows = [(f["face_id"], f["image_id"], "face", f["label"],
                 np.asarray(f["embedding"], np.float32)) for f in faces]
        wanted_tracks = set(ids) - {f["face_id"] for f in faces}
        if wanted_tracks:
            by_track: dict[str, list[dict]] = defaultdict(list)
            for r in self.coll.tracks_of(sorted({parse_item(t)[0] for t in wanted_tracks})):
                key = track_key(r["row_id"])
                if key in wanted_tracks:
                    by_track[key].append(r)
            for key, trs in sorted(by_track.items()):
                mean = np.mean([np.asarray(r["embedding"], np.float32) for r in trs], 0)
                rows.append((key, trs[0]["video_id"], "track",
                             next((r["label"] for r in trs if r["label"]), ""),
                             mean / max(float(np.linalg.norm(mean)), 1e-12)))
        if rows:
            ids_, media, kinds, labels, vecs = zip(*rows, strict=True)
            out = Items(list(ids_), list(media), list(kinds), list(labels), np.stack(vecs))
        return out

    # -- reading ---------------------------------------------------------------------
    def persons(self, with_paths: bool = False) -> list[Person]:
        """Every person, the largest first."""
        rows = self.rows.persons()
        by_person: dict[int, list[AssignmentRow]] = defaultdict(list)
        for a in self.rows.assignments():
            by_person[a.person_id].append(a)
        paths = self._paths({a.media_id for rows_ in by_person.values() for a in rows_}) \
            if with_paths else {}
        out = [self._describe(p, by_person.get(p.person_id, []), paths if with_paths else None)
               for p in rows]
        return sorted(out, key=lambda p: (-p.faces, p.person_id))

    def person(self, ref: int | str) -> Person:
        """One person by id or name, with every face and track (most typical first)."""
        [pid] = self.resolve(ref, one=True)
        row = self.rows.person(pid)
        assert row is not None
        assigned = self.rows.assignments_of([pid])
        person = self._describe(row, assigned, self._paths({a.media_id for a in assigned}))
        person.items = self._items(assigned, row)
        return person

    def resolve(self, ref: int | str, one: bool = False) -> list[int]:
        """Person ids for an id (an int, or a string of digits) or a name. Raises
        NotFoundError when none matches, and with `one` when several share the name."""
        if not self.clustered():
            raise NotFoundError("no persons yet: run `revsearch people` to group the "
                                "indexed faces into persons first")
        text = str(ref).strip()
        if text.isdigit():
            if self.rows.person(int(text)) is None:
                raise NotFoundError(f"no person with id {text} (see `revsearch people`)")
            return [int(text)]
        wanted = norm_name(text)
        found = [p.person_id for p in self.rows.persons() if p.name and norm_name(p.name) == wanted]
        if not found:
            raise NotFoundError(f"no person is named {text!r} (see `revsearch people`)")
        if one and len(found) > 1:
            raise NotFoundError(f"{len(found)} persons are named {text!r} (ids "
                                f"{', '.join(map(str, sorted(found)))}): use an id, or "
                                f"merge them")
        return sorted(found)

    def person_of(self, item_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """(person id, name) of each of these faces that has one."""
        if not self.clustered():
            return {}
        assigned = self.rows.assignments_for(item_ids)
        names = {p: (self.rows.person(p) or PersonRow(person_id=p, centroid=np.zeros(1))).name
                 for p in {a.person_id for a in assigned}}
        return {a.item_id: (a.person_id, names[a.person_id]) for a in assigned}

    def _describe(self, row: PersonRow, assigned: Sequence[AssignmentRow],
                  paths: dict[str, str] | None) -> Person:
        cover = None
        if assigned:
            ids = {a.item_id: a for a in assigned}
            a = ids.get(row.cover) or assigned[0]
            media, number = parse_item(a.item_id)
            cover = PersonItem(a.item_id, a.kind, media, number,
                               path=(paths or {}).get(media, ""))
        media_ids = sorted({a.media_id for a in assigned})
        return Person(row.person_id, row.name, row.name_source, len(assigned), len(media_ids),
                      cover, paths=None if paths is None else
                      sorted(paths[m] for m in media_ids if m in paths))

    def _items(self, assigned: Sequence[AssignmentRow], row: PersonRow) -> list[PersonItem]:
        faces = {f["face_id"]: f for f in self.coll.faces_by_id(
            [a.item_id for a in assigned if a.kind == "face"])}
        tracks: dict[str, dict] = {}
        for r in self.coll.tracks_of(sorted({a.media_id for a in assigned
                                             if a.kind == "track"})):
            tracks.setdefault(track_key(r["row_id"]), r)
        centroid = np.asarray(row.centroid, np.float64)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        paths = self._paths({a.media_id for a in assigned})
        out = []
        for a in assigned:
            found = faces.get(a.item_id) or tracks.get(a.item_id)
            media, number = parse_item(a.item_id)
            item = PersonItem(a.item_id, a.kind, media, number, path=paths.get(media, ""))
            if found:
                item.label = found["label"]
                item.box = [round(float(v), 1) for v in found["box"]]
                item.similarity = round(float(np.asarray(found["embedding"]) @ centroid), 5)
            out.append(item)
        return sorted(out, key=lambda i: -(i.similarity or -2.0))

    def _paths(self, media_ids: set[str]) -> dict[str, str]:
        return {r["image_id"]: r["path"] for r in self.coll.media_by_id(sorted(media_ids))}

    # -- feedback --------------------------------------------------------------------
    def name(self, ref: int | str, name: str) -> Person:
        """Name a person (a name another person holds already is refused: merge them)."""
        clean = " ".join(str(name).split())
        if not clean or len(clean) > MAX_NAME:
            raise PeopleError(f"a name needs 1 to {MAX_NAME} characters")
        if clean.isdigit():
            raise PeopleError("a name cannot be only digits (those are person ids)")
        [pid] = self.resolve(ref, one=True)
        for p in self.rows.persons():
            if p.person_id != pid and p.name and norm_name(p.name) == norm_name(clean):
                raise PeopleError(f"person {p.person_id} is named {p.name!r} already; "
                                     f"merge them with `revsearch people merge "
                                     f"{p.person_id} {pid}`")
        row = self.rows.person(pid)
        assert row is not None
        row.name, row.name_source = clean, "user"
        self.rows.put_persons([row])
        self.rows.flush()
        return self.person(pid)

    def merge(self, into: int | str, other: int | str) -> Person:
        """Move every face of `other` into `into`; remembered as a must-link."""
        [a] = self.resolve(into, one=True)
        [b] = self.resolve(other, one=True)
        if a == b:
            raise PeopleError("merge needs two different persons")
        pa, pb = self.rows.person(a), self.rows.person(b)
        assert pa is not None and pb is not None
        moved = self.rows.assignments_of([b])
        for m in moved:
            m.person_id = a
        self.rows.put_assignments(moved)
        total = pa.size + pb.size
        pa.centroid = ((np.asarray(pa.centroid, np.float64) * pa.size
                        + np.asarray(pb.centroid, np.float64) * pb.size) / max(total, 1))
        pa.size = total
        if not pa.name and pb.name:
            pa.name, pa.name_source = pb.name, pb.name_source
        self.rows.put_persons([pa])
        if pa.cover and pb.cover:
            self.rows.put_links([_link(pa.cover, pb.cover, "must")])
        self.rows.delete_persons([b])
        self.rows.flush()
        return self.person(a)

    def remove_item(self, item_id: str) -> Person:
        """"Not this person": move a face (or track) out of its person into a person of
        its own, and keep it apart from that person's representative faces for good."""
        [assigned] = self.rows.assignments_for([item_id]) or [None]
        if assigned is None:
            raise NotFoundError(f"no clustered face or track has id {item_id!r}")
        pid = assigned.person_id
        row = self.rows.person(pid)
        assert row is not None
        others = [a for a in self.rows.assignments_of([pid]) if a.item_id != item_id]
        if not others:
            raise PeopleError(f"{item_id} is the only face of person {pid}: nothing "
                                 f"to move it out of")
        items = self._load([item_id])
        anchors = [row.cover] if row.cover and row.cover != item_id else []
        anchors += [a.item_id for a in others if a.item_id not in anchors][:ANCHORS - len(anchors)]
        self.rows.put_links([_link(item_id, b, "cannot") for b in anchors])
        new_id = self.rows.next_free()
        self.rows.set_next_free(new_id + 1)
        assigned.person_id = new_id
        self.rows.put_assignments([assigned])
        self.rows.put_persons([self._person_row(new_id, items, [0], None, seed=False)])
        if len(items):
            total = row.size - 1
            row.centroid = ((np.asarray(row.centroid, np.float64) * row.size
                             - items.vectors[0]) / max(total, 1))
            row.size = total
        if row.cover == item_id:
            row.cover = others[0].item_id
        self.rows.put_persons([row])
        self.rows.flush()
        return self.person(new_id)


class _People(dict):
    """Person rows by id, fetched from the database only when asked for."""

    def __init__(self, rows: PeopleCollections) -> None:
        super().__init__()
        self.rows = rows

    def fetch(self, ids: set[int]) -> None:
        missing = [i for i in ids if i not in self]
        for p in self.rows.persons_by_id(missing):
            self[p.person_id] = p


def _link(a: str, b: str, kind: str) -> LinkRow:
    return LinkRow(link_id=f"{kind}:{a}|{b}", a=a, b=b, kind=kind, created=int(time.time()))


def _members(ids: Sequence[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for i, pid in enumerate(ids):
        out[int(pid)].append(i)
    return out


def _match(labels: np.ndarray, old: Sequence[int | None], start: int) -> list[int]:
    """A person id per item: each cluster takes the id of the old person it shares the
    most items with (one cluster per old person, largest overlaps first); the others
    get new ids from `start`."""
    overlap: Counter = Counter((int(c), p) for c, p in zip(labels.tolist(), old, strict=True)
                               if p is not None)
    taken_cluster: dict[int, int] = {}
    taken_person: set[int] = set()
    for (c, p), _ in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
        if c not in taken_cluster and p not in taken_person:
            taken_cluster[c] = p
            taken_person.add(p)
    out, fresh = [], start
    for c in labels.tolist():
        if c not in taken_cluster:
            taken_cluster[c] = fresh
            fresh += 1
        out.append(taken_cluster[c])
    return out


def _label_name(labels: Sequence[str]) -> tuple[str, str]:
    """The folder label most of a cluster's labelled items carry, as its seeded name."""
    counts = Counter(label for label in labels if label)
    if not counts:
        return "", ""
    label, n = counts.most_common(1)[0]
    return (label, "label") if n * 2 > sum(counts.values()) else ("", "")
