"""Search on a real LFW subset in a real Milvus Lite database."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import lfw

import revsearch
from revsearch.errors import NoFaceError
from revsearch.store import image_id_for

# Every test reads the session's `indexed` subset (about 100 photos ingested).
pytestmark = pytest.mark.slow


@pytest.fixture
def rs(indexed):
    with revsearch.connect(indexed["db"], home=indexed["home"], workers=2) as handle:
        yield handle


def _labels(result):
    return [h.label for h in result.hits]


def test_subset_was_indexed_with_labels(indexed, rs):
    report = indexed["report"]
    assert report.indexed >= 90 and not report.problems
    stats = rs.stats()
    assert stats["images"] == report.indexed
    assert stats["faces"] >= stats["images"]  # LFW photos often show bystanders too
    assert stats["threshold"] is not None


def test_query_ranks_same_person_first(rs, indexed):
    query = indexed["dir"] / "George_W_Bush" / "George_W_Bush_0001.jpg"
    [result] = rs.search(query, k=10)
    # The query itself is excluded; the 11 other Bush photos fill the top 10.
    assert all(h.path != str(query) for h in result.hits)
    assert _labels(result) == ["George_W_Bush"] * 10
    assert all(h.match for h in result.hits)
    sims = [h.similarity for h in result.hits]
    assert sims == sorted(sims, reverse=True)
    # One hit per image.
    assert len({h.image_id for h in result.hits}) == len(result.hits)


def test_include_query_returns_it_first(rs, indexed):
    query = indexed["dir"] / "George_W_Bush" / "George_W_Bush_0001.jpg"
    [result] = rs.search(query, k=3, include_query=True)
    assert result.hits[0].path == str(query) and result.hits[0].similarity > 0.99


def test_unknown_people_are_no_match(rs):
    # Someone not in the index: the best hits exist but the threshold says no match.
    [result] = rs.search(lfw("Arnold_Schwarzenegger", 1), k=5)
    assert result.hits and not any(h.match for h in result.hits)


def test_collage_found_by_either_person(rs, indexed, collage):
    rs.index([collage.parent])
    try:
        for person, num in (("Colin_Powell", 1), ("Tony_Blair", 1)):
            [result] = rs.search(indexed["dir"] / person / f"{person}_{num:04d}.jpg", k=10)
            hit = next((h for h in result.hits if h.path == str(collage)), None)
            assert hit is not None and hit.match, f"{person} not found in the collage"
            expected_face = 0 if person == "Colin_Powell" else 1
            assert hit.face_index == expected_face
    finally:  # keep the shared index as other tests expect it
        rs.collection.remove([image_id_for(str(collage))])


def test_face_selection_on_collage(rs, collage):
    faces = rs.faces(collage)
    assert len(faces) == 2
    assert faces[0].box[0] < faces[1].box[0]  # left to right
    assert faces[0].default  # Powell's face is larger
    [default] = rs.search(collage, k=5)
    [second] = rs.search(collage, k=5, face=1)
    assert [h.label for h in default.hits if h.match][:3] == ["Colin_Powell"] * 3
    assert [h.label for h in second.hits if h.match][:3] == ["Tony_Blair"] * 3
    both = rs.search(collage, k=5, all_faces=True)
    assert [r.face.index for r in both] == [0, 1]
    with pytest.raises(NoFaceError, match="no face 7"):
        rs.search(collage, face=7)


def test_array_and_bytes_queries(rs, indexed):
    path = indexed["dir"] / "Tony_Blair" / "Tony_Blair_0002.jpg"
    from revsearch.media import load_image

    by_bytes = rs.search(path.read_bytes(), k=3)[0]
    by_array = rs.search(load_image(path), k=3, include_query=True)[0]
    assert by_bytes.hits[0].label == "Tony_Blair"
    assert by_array.hits[0].path == str(path)


def test_faceless_query_raises(rs):
    with pytest.raises(NoFaceError, match="no face found"):
        rs.search(np.full((200, 200, 3), 90, np.uint8))
