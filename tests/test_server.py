"""The Milvus server path: a real standalone server (PyPI `milvus`) on 127.0.0.1.

Same data, same queries as Milvus Lite: the results must agree.
"""

from __future__ import annotations

import json

import pytest
from conftest import lfw

import revsearch

# Every test talks to a Milvus standalone server started for this module.
pytestmark = pytest.mark.slow


def _results(rs, queries, k=8):
    out = []
    for q in queries:
        [r] = rs.search(q, k=k)
        out.append([(h.path, h.face_index, round(h.similarity, 4), h.match) for h in r.hits])
    return out


def test_server_and_lite_agree(server_uri, indexed, tmp_path):
    photos = indexed["dir"]
    queries = [lfw("George_W_Bush", 20), lfw("Colin_Powell", 20), lfw("Tony_Blair", 20),
               photos / "Colin_Powell" / "Colin_Powell_0002.jpg"]
    home = tmp_path / "home"
    with revsearch.connect(server_uri, home=home, workers=2, progress=False) as rs:
        assert not rs.store.is_lite
        report = rs.index([photos])
        assert report.indexed == indexed["report"].indexed and not report.problems
        assert rs.index([photos]).indexed == 0  # incremental on the server too
        stats = rs.stats()
        on_server = _results(rs, queries)
    with revsearch.connect(indexed["db"], home=indexed["home"]) as rs:
        lite_stats = rs.stats()
        on_lite = _results(rs, queries)
    assert (stats["images"], stats["faces"]) == (lite_stats["images"], lite_stats["faces"])
    assert stats["backend"] == "server"
    for server_hits, lite_hits in zip(on_server, on_lite, strict=True):
        assert [h[:2] for h in server_hits] == [h[:2] for h in lite_hits]
        for s, lt in zip(server_hits, lite_hits, strict=True):
            assert s[2] == pytest.approx(lt[2], abs=2e-4) and s[3] == lt[3]


def test_migrate_lite_to_server_and_back(server_uri, indexed, tmp_path):
    """`revsearch migrate` copies every row; search on the copy gives the same hits."""
    from conftest import run_cli

    out = run_cli("migrate", indexed["db"], server_uri)
    assert out.returncode == 0, out.stderr
    assert f"sface: copied {indexed['report'].indexed} files" in out.stdout
    back = str(tmp_path / "back.db")
    assert run_cli("migrate", server_uri, back, "--space", "sface").returncode == 0
    queries = [lfw("Tony_Blair", 21), lfw("George_W_Bush", 21)]
    with revsearch.connect(indexed["db"], home=indexed["home"]) as rs:
        original = _results(rs, queries)
        rows = sorted(rs.collection.all_faces(with_embeddings=True), key=lambda r: r["face_id"])
    with revsearch.connect(back, home=indexed["home"]) as rs:
        assert _results(rs, queries) == original
        copied = sorted(rs.collection.all_faces(with_embeddings=True), key=lambda r: r["face_id"])
    assert [r["face_id"] for r in copied] == [r["face_id"] for r in rows]
    assert all(list(a["embedding"]) == pytest.approx(list(b["embedding"]), abs=1e-7)
               for a, b in zip(copied, rows, strict=True))


def test_hnsw_settings_reach_the_server(server_uri, indexed, tmp_path):
    """--hnsw-m / --hnsw-ef-construction shape new collections; --search-ef is used."""
    photos = indexed["dir"] / "Tony_Blair"
    with revsearch.connect(server_uri, home=tmp_path, flip=True, hnsw_m=8,
                           hnsw_ef_construction=64, search_ef=100, progress=False) as rs:
        rs.index([photos])
        index = rs.store.client.describe_index("faces_sface_flip", "embedding")
        assert (str(index.get("M")), str(index.get("efConstruction"))) == ("8", "64")
        assert rs.collection.search_ef == 100
        hits = rs.search(lfw("Tony_Blair", 30), k=3)[0].hits
        assert [h.label for h in hits] == ["Tony_Blair"] * 3


def test_videos_on_the_server(server_uri, tmp_path):
    """Tracks are stored and searched on the server too (grouped per video client-side
    on servers before 2.4); runs last, as it adds videos to the server's collections."""
    from conftest import DATA

    grid = DATA / "videos" / "grid"
    if not grid.is_dir():
        pytest.skip("GRID clips not found")
    with revsearch.connect(server_uri, home=tmp_path, workers=2, progress=False) as rs:
        report = rs.index([grid])
        assert report.videos == 11 and not report.problems
        for query, other in (("pwij3p.mpg", "id2_vcd_swwp2s.mpg"),
                             ("id2_vcd_swwp2s.mpg", "pwij3p.mpg")):
            hits = rs.search(grid / query, k=4, target="videos")[0].hits
            assert hits[0].path.endswith(other) and hits[0].match
            assert len({h.image_id for h in hits}) == 4
            assert not any(h.path.endswith(query) for h in hits)


def test_serve_and_cli_index_share_the_server(server_uri, tmp_path):
    """With a Milvus server as the store there is no lock to hand over: `revsearch serve
    --watch` and `revsearch index` write side by side and the server sees both. (People
    not in the other tests' subset, so their rows cannot change those tests' hits.)"""
    from conftest import copy_people, run_cli
    from test_watch import Served

    watched = copy_people(tmp_path / "watched", ["Gerhard_Schroeder"], 3)
    other = copy_people(tmp_path / "other", ["Donald_Rumsfeld"], 3)
    server = Served(server_uri, tmp_path / "home", "--watch", str(watched))
    try:
        out = run_cli("index", str(other), "--db", server_uri, "--home",
                      str(tmp_path / "home"), "--workers", "2", "--json")
        assert out.returncode == 0, out.stderr
        assert "held by" not in out.stderr and json.loads(out.stdout)["indexed"] == 3
        [job] = server.idle()
        assert job["report"]["indexed"] == 3
        for folder, name in ((watched, "Gerhard_Schroeder"), (other, "Donald_Rumsfeld")):
            mine = {str(p) for p in (folder / name).glob("*.jpg")}
            assert mine <= set(server.hits(lfw(name, 10), k=40))
    finally:
        server.stop()
