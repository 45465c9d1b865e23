"""People: faces grouped into persons on real LFW photos in a real Milvus Lite; names,
merges and "not this person" that hold through new photos and re-clustering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_people, lfw, require_data, run_cli

import revsearch
from revsearch.errors import NotFoundError, PeopleError
from revsearch.eval.metrics import clustering_scores
from revsearch.people import cluster
from revsearch.people.graph import exact_graph

POWELL, BLAIR = "Colin_Powell", "Tony_Blair"


@pytest.fixture(scope="module")
def two_people(tmp_path_factory) -> dict:
    """Six photos each of Powell and Blair, indexed once without labels (so nothing is
    named for the tests but by them)."""
    require_data()
    root = tmp_path_factory.mktemp("two_people")
    images = copy_people(root / "images", [POWELL, BLAIR], 6)
    db = root / "two.db"
    with revsearch.connect(str(db), home=root, workers=2, progress=False) as rs:
        assert rs.index([images], labels="none").faces >= 12
    return {"root": root, "db": db, "images": images}


@pytest.fixture
def rs(two_people, tmp_path):
    """A private copy of the indexed database, open."""
    db = tmp_path / "copy.db"
    shutil.copytree(two_people["db"], db)
    with revsearch.connect(str(db), home=tmp_path, workers=2, progress=False) as index:
        yield index


def _person_of(rs, path: Path) -> int:
    """The person of the photo's main face: the largest of the persons holding it (an
    LFW photo may show someone else in the background too)."""
    found = [p for p in rs.people(paths=True) if str(path) in (p.paths or [])]
    return max(found, key=lambda p: p.faces).person_id


def _groups(rs) -> list[set[str]]:
    """The persons as sets of person folder names of their media."""
    return [{Path(x).parent.name for x in p.paths or []} for p in rs.people(paths=True)]


def test_two_people_become_two_persons(rs, two_people):
    people = rs.people(paths=True)
    big = [p for p in people if p.faces > 1]
    assert len(big) == 2
    assert sorted(tuple({Path(x).parent.name for x in p.paths}) for p in big) == \
        [(POWELL,), (BLAIR,)]
    assert sum(p.faces for p in people) == sum(1 for _ in rs.collection.all_faces())
    assert all(p.name == "" for p in people)  # indexed without labels


@pytest.mark.slow
def test_name_survives_new_photos_and_reclustering(rs, two_people, tmp_path):
    powell = _person_of(rs, two_people["images"] / POWELL / f"{POWELL}_0001.jpg")
    rs.name_person(powell, "Colin Powell")
    more = tmp_path / "more"
    (more / POWELL).mkdir(parents=True)
    for i in range(7, 10):
        shutil.copy2(lfw(POWELL, i), more / POWELL)
    report = rs.index([more], labels="none")
    assert report.people is not None and report.people["new"] == 3
    person = rs.person("colin powell")  # names match case and '_' insensitively
    assert person.person_id == powell and person.media == 9
    rs.cluster(recluster=True)
    again = rs.person("Colin Powell")
    assert again.person_id == powell and again.media == 9 and again.name_source == "user"


def test_merge_holds_through_reclustering(rs, two_people):
    images = two_people["images"]
    a = _person_of(rs, images / POWELL / f"{POWELL}_0001.jpg")
    b = _person_of(rs, images / BLAIR / f"{BLAIR}_0001.jpg")
    merged = rs.merge_people(a, b)
    assert merged.person_id == a and merged.media >= 12
    with pytest.raises(NotFoundError):
        rs.person(b)
    rs.cluster(recluster=True)
    assert rs.person(a).media == merged.media


def test_not_this_person_holds_through_reclustering(rs, two_people):
    images = two_people["images"]
    blair = _person_of(rs, images / BLAIR / f"{BLAIR}_0001.jpg")
    face = next(i for i in rs.person(blair).items if f"{BLAIR}_0003" in i.path)
    alone = rs.remove_face(face.item_id)
    assert alone.person_id != blair and alone.faces == 1
    assert rs.person(blair).faces == 5
    rs.cluster(recluster=True)
    assert rs.person(blair).faces == 5
    assert face.item_id not in {i.item_id for i in rs.person(blair).items}


@pytest.mark.slow
def test_person_search_returns_exactly_their_media(rs, two_people):
    images = two_people["images"]
    blair = _person_of(rs, images / BLAIR / f"{BLAIR}_0001.jpg")
    rs.name_person(blair, "Tony Blair")
    found = rs.search_person("Tony Blair")
    assert {h.path for h in found.hits} == {str(p) for p in (images / BLAIR).glob("*.jpg")}
    assert [h.rank for h in found.hits] == list(range(1, 7))
    # A photo query of Blair (not indexed) says whose face it is.
    [result] = rs.search(lfw(BLAIR, 20), k=3)
    assert result.person == "Tony Blair" and result.hits[0].person_id == blair


def test_bad_input_is_refused_and_changes_nothing(rs, two_people):
    before = [(p.person_id, p.name, p.faces) for p in rs.people()]
    with pytest.raises(NotFoundError, match="no person with id 999"):
        rs.name_person(999, "Nobody")
    with pytest.raises(NotFoundError, match="no person is named"):
        rs.search_person("Nobody At All")
    with pytest.raises(NotFoundError):
        rs.remove_face("0" * 32 + "_0000")
    first, second = before[0][0], before[1][0]
    rs.name_person(first, "Somebody")
    with pytest.raises(PeopleError, match="named 'Somebody' already"):
        rs.name_person(second, "somebody")
    with pytest.raises(PeopleError):
        rs.merge_people(first, first)
    with pytest.raises(PeopleError):
        rs.name_person(first, "   ")
    after = [(p.person_id, p.name, p.faces) for p in rs.people()]
    assert after == [(i, "Somebody" if i == first else n, f) for i, n, f in before]


@pytest.mark.slow
def test_never_clustered_index_has_no_persons_until_asked(two_people, tmp_path):
    db = tmp_path / "fresh.db"
    shutil.copytree(two_people["db"], db)
    with revsearch.connect(str(db), home=tmp_path, progress=False) as index:
        assert not index.book.clustered()
        with pytest.raises(NotFoundError, match="no persons yet"):
            index.person(1)
        [result] = index.search(lfw(POWELL, 20), k=2)
        assert result.person_id is None and result.hits[0].person_id is None


@pytest.mark.slow
def test_cli_people_and_search_by_person(two_people, tmp_path):
    db = tmp_path / "cli.db"
    shutil.copytree(two_people["db"], db)
    env = {"REVSEARCH_HOME": str(tmp_path), "REVSEARCH_DB": str(db)}
    listed = run_cli("people", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    people = json.loads(listed.stdout)
    powell = next(p for p in people if any(POWELL in x for x in p["paths"]))
    named = run_cli("people", "name", str(powell["person_id"]), "General Powell", env=env)
    assert named.returncode == 0, named.stderr
    found = run_cli("search", "--person", "General Powell", "--json", env=env)
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)["hits"]) == 6
    missing = run_cli("search", "--person", "Nobody", env=env)
    assert missing.returncode == 8 and "no person is named" in missing.stderr


@pytest.mark.slow
def test_migrate_takes_the_persons_along(rs, tmp_path):
    rs.name_person(rs.people()[0].person_id, "Carried Over")
    target = tmp_path / "target.db"
    source = rs.settings.db_uri
    rs.close()
    copied = revsearch.migrate(source, str(target))
    assert next(iter(copied.values()))["persons"] >= 2
    with revsearch.connect(str(target), home=tmp_path, progress=False) as moved:
        assert moved.person("Carried Over").faces >= 1


def test_methods_on_real_vectors(two_people):
    """Every method separates the two men on the exact graph of their real vectors."""
    from revsearch.people.graph import load_items
    from revsearch.store import Store

    with Store(str(two_people["db"])) as store:
        items = load_items(store.open_space("sface"))
    with revsearch.connect(str(two_people["db"]), home=two_people["root"],
                           progress=False) as index:
        paths = {r["image_id"]: r["path"] for r in index.collection.media()}
    truth = np.array([Path(paths[m]).parent.name for m in items.media])
    graph = exact_graph(items.vectors, k=10)
    for method in cluster.METHODS:
        labels = cluster.run(method, graph, 0.5, vectors=items.vectors)
        scores = clustering_scores(labels, truth)
        assert scores["pairwise_precision"] == 1.0, method
        assert scores["bcubed_f"] > 0.6, method


def test_links_override_any_clustering():
    labels = np.array([0, 0, 1, 1, 2])
    out = cluster.apply_links(labels, must=[(0, 2)], cannot=[(3, 2)])
    assert out[0] == out[1] == out[2] and out[3] not in (out[0], out[4])


def test_clustering_scores_by_hand():
    s = clustering_scores(np.array([0, 0, 1, 1, 2]), np.array(list("aaabb")))
    assert (s["bcubed_precision"], s["pairwise_precision"], s["pairwise_recall"]) == \
        pytest.approx((0.8, 0.5, 0.25))
    assert s["bcubed_recall"] == pytest.approx((2 / 3 * 2 + 1 / 3 + 1 / 2 * 2) / 5)
    assert (s["clusters"], s["classes"]) == (3, 2)
