"""Person query expansion: the LFW measurement (`revsearch eval people --expansion`) on a
small real LFW subset, and the search option it shipped (`person_expansion`)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import copy_people, lfw, mini_dev_lfw
from fastapi.testclient import TestClient

import revsearch
from revsearch.config import load_settings
from revsearch.people.expand import WEIGHT
from revsearch.serve import create_app


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> dict:
    """Eight development and eight other LFW people, four photos each, indexed once."""
    root = mini_dev_lfw(tmp_path_factory.mktemp("mini_lfw"), people=8, per_person=4)
    home = root / "home"
    settings = load_settings(home=home, workers=2, progress=False)
    return {"root": root, "settings": settings, "db": str(home / "lfw.db")}


def test_expansion_measurement_on_real_faces(mini):
    from revsearch.eval import lfw, people

    result = people.evaluate_expansion(mini["root"], mini["settings"], mini["db"], seed=1,
                                       recluster_sample=5)
    # The plain rule is exactly `revsearch eval lfw`'s retrieval on the same gallery.
    g = lfw.build_gallery(mini["root"] / "lfw-deepfunneled", mini["settings"], mini["db"])
    plain = lfw.retrieval(g)
    case = result["cases"]["in_collection"]
    both = (case["rules"]["plain"]["dev"]["mAP"] * result["dev_queries"]
            + case["rules"]["plain"]["test"]["mAP"] * result["test_queries"])
    assert both / result["queries"] == pytest.approx(plain["mAP"], abs=1e-9)
    assert result["queries"] == plain["queries"] == 64
    assert result["dev_people"] == result["test_people"] == 8
    # Four photos per person, well apart: the persons hold them, so the query's
    # person has other faces, and querying with them loses nothing here.
    assert case["expanded_queries_test"] >= 28
    for name, rule in case["rules"].items():
        assert rule["test"]["rank1"] >= case["rules"]["plain"]["test"]["rank1"] - 0.1, name
    assert case["rules"][case["chosen"]]["dev"]["mAP"] == max(
        r["dev"]["mAP"] for n, r in case["rules"].items() if n != "plain")
    lo, hi = case["difference_test"]["mAP_ci95_people"]
    assert lo <= case["difference_test"]["mAP"] <= hi
    assert set(result["cases"]) == {"in_collection", "not_in_collection"}
    assert np.isfinite(result["cases"]["not_in_collection"]["difference_test"]["rank1"])
    # Clustered again without the query photo, each sampled query still finds its person.
    sample = result["reclustered_sample"]
    assert sample["queries"] == 5 and sample["expanded"] == 5
    assert sample["rank1"] >= -0.2


POWELL, BLAIR = "Colin_Powell", "Tony_Blair"


@pytest.fixture(scope="module")
def grouped(tmp_path_factory) -> dict:
    """Six photos each of Powell and Blair, indexed and grouped into persons once."""
    root = tmp_path_factory.mktemp("expand")
    images = copy_people(root / "images", [POWELL, BLAIR], 6)
    db = root / "two.db"
    with revsearch.connect(str(db), home=root, workers=2, progress=False) as rs:
        rs.index([images], labels="none")
        rs.cluster()
    return {"root": root, "db": db, "images": images}


def test_search_with_person_expansion(grouped, tmp_path):
    db = tmp_path / "copy.db"
    shutil.copytree(grouped["db"], db)
    indexed = grouped["images"] / POWELL / f"{POWELL}_0001.jpg"
    with revsearch.connect(str(db), home=tmp_path, workers=2, progress=False) as rs:
        [plain] = rs.search(indexed, 5)
        assert not plain.expanded and plain.expanded_person_id is None
        assert all(h.expanded_score is None for h in plain.hits)
        [res] = rs.search(indexed, 5, expand=True)
        powell = {p.person_id for p in rs.people(paths=True)
                  if str(indexed) in (p.paths or [])}
        assert res.expanded and res.expanded_person_id in powell
        # The five other Powell photos, ranked by the blend, judged on their own cosine.
        assert [h.path.split("/")[-2] for h in res.hits] == [POWELL] * 5
        assert str(indexed) not in {h.path for h in res.hits}
        blends = [h.expanded_score for h in res.hits]
        assert blends == sorted(blends, reverse=True)
        # The blend, by hand: the query's own face is in the person, so the person's
        # mean is the expansion vector.
        row = rs.book.rows.person(res.expanded_person_id)
        mean = np.asarray(row.centroid, np.float64)
        mean /= np.linalg.norm(mean)
        query = {f["face_id"]: np.asarray(f["embedding"]) for f in rs.collection.all_faces(
            with_embeddings=True) if f["path"] == str(indexed)}
        q = max(query.values(), key=lambda v: float(v @ mean))
        faces = {f["face_id"]: np.asarray(f["embedding"])
                 for f in rs.collection.faces_by_id([h.face_id for h in res.hits])}
        for h in res.hits:
            v = faces[h.face_id]
            assert h.similarity == pytest.approx(float(v @ q), abs=1e-4)
            assert h.expanded_score == pytest.approx(
                (1 - WEIGHT) * float(v @ q) + WEIGHT * float(v @ mean), abs=1e-4)
        # A photo that is not indexed is placed by its neighbours: the same person.
        [new] = rs.search(lfw(POWELL, 10), 6, expand=True)
        assert new.expanded and new.expanded_person_id == res.expanded_person_id
        assert [h.path.split("/")[-2] for h in new.hits] == [POWELL] * 6
    # The setting turns it on by default; videos are not ranked by it.
    with revsearch.connect(str(db), home=tmp_path, workers=2, progress=False,
                           person_expansion=True) as rs:
        [on] = rs.search(indexed, 5)
        assert on.expanded and [h.path for h in on.hits] == [h.path for h in res.hits]
        [videos] = rs.search(indexed, 5, target="videos")
        assert not videos.expanded
    # REST: the form field, and the result says so.

    with TestClient(create_app(db=str(db), home=tmp_path, workers=1)) as client:
        for expand, expected in (("true", True), ("false", False)):
            reply = client.post("/api/search", data={"k": "5", "expand": expand}, files={
                "file": ("q.jpg", indexed.read_bytes(), "image/jpeg")})
            assert reply.status_code == 200, reply.text
            [out] = reply.json()["results"]
            assert out["expanded"] is expected
            assert (out["expanded_person_id"] == res.expanded_person_id) is expected
            assert [h["path"] for h in out["hits"]] == [h.path for h in (
                res.hits if expected else plain.hits)]
