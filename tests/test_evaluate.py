"""The evaluation commands, run end to end on a small LFW-shaped folder of real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import copy_people, require_data, run_cli
from PIL import Image

PEOPLE = ["George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld",
          "Gerhard_Schroeder", "Ariel_Sharon"]


def _mini_root(dest, per_person=5):
    images = copy_people(dest / "lfw-deepfunneled", PEOPLE, per_person)
    # A "person" whose two photos show no face: the evaluation's documented fallback.
    (images / "Zz_Wall").mkdir()
    for i in (1, 2):
        Image.new("RGB", (250, 250), (90 + 40 * i, 120, 140)).save(
            images / "Zz_Wall" / f"Zz_Wall_{i:04d}.jpg")
    # 2 folds x (3 same + 3 different) pairs, pairs.txt layout.
    lines = ["2\t3"]
    for f in range(2):
        lines += [f"{PEOPLE[f * 3 + j]}\t1\t{2 + f}" for j in range(3)]
        lines += [f"{PEOPLE[f * 3 + j]}\t{3 + f}\t{PEOPLE[(f * 3 + j + 1) % 6]}\t{4 - f}"
                  for j in range(3)]
    (dest / "pairs.txt").write_text("\n".join(lines) + "\n")
    return dest


@pytest.mark.slow
def test_eval_lfw_compare_writes_all_outputs(tmp_path):
    require_data()
    root = _mini_root(tmp_path / "lfw")
    out = tmp_path / "results"
    env = {"REVSEARCH_HOME": str(tmp_path / "home"), "REVSEARCH_WORKERS": "2"}
    res = run_cli("eval", "lfw", "--lfw", str(root), "--compare", "--out", str(out), env=env,
                  timeout=600)
    assert res.returncode == 0, res.stderr
    face = json.loads((out / "lfw_sface.json").read_text())
    base = json.loads((out / "lfw_baseline_efficientnet_lite0.json").read_text())
    assert (face["no_face_images"], base["no_face_images"]) == (2, 0)
    for r in (face, base):
        assert r["images"] == 32 and r["retrieval"]["queries"] == 32
        assert r["verification"]["pairs"] == 12
        assert len(r["retrieval"]["cmc"]) == 100
        assert 0 <= r["retrieval"]["mAP"] <= 1
    # Six people, five photos each: faces must separate them, whole images barely do.
    # (30 of the 32 queries have a face; the two walls can only find each other by luck.)
    assert face["retrieval"]["rank1"] >= 28 / 32 and face["retrieval"]["mAP"] >= 0.85
    assert face["retrieval"]["mAP"] > base["retrieval"]["mAP"] + 0.2
    for r in (face, base):
        ret = r["retrieval"]
        assert ret["rank1_misses"] == round((1 - ret["rank1"]) * ret["queries"])
        assert 0 <= ret["rank1_misses_on_unlabelled_face"] <= ret["rank1_misses"]
    table = (out / "lfw_compare.md").read_text()
    assert "| sface |" in table and "| baseline_efficientnet_lite0 |" in table
    for key in ("sface", "baseline_efficientnet_lite0"):
        for kind in ("cmc", "roc", "hist", "examples"):
            png = out / f"lfw_{key}_{kind}.png"
            assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_eval_ann_measures_index_types(tmp_path):
    require_data()
    root = _mini_root(tmp_path / "lfw", per_person=8)
    out = tmp_path / "results"
    env = {"REVSEARCH_HOME": str(tmp_path / "home"), "REVSEARCH_WORKERS": "2"}
    res = run_cli("eval", "ann", "--lfw", str(root), "--out", str(out), "--queries", "20",
                  env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    [run] = json.loads((out / "ann.json").read_text())["runs"]
    assert run["backend"] == "Milvus Lite"
    kinds = {(r["index"], r["metric"]) for r in run["results"]}
    refused = {tuple(k.split()) for k in run["refused"]}
    assert kinds | refused == {(i, m) for i in ("FLAT", "HNSW", "IVF_FLAT", "IVF_PQ")
                               for m in ("COSINE", "L2")}
    assert {("FLAT", "COSINE"), ("HNSW", "COSINE"), ("IVF_FLAT", "COSINE")} <= kinds
    flat = [r for r in run["results"] if r["index"] == "FLAT" and r["metric"] == "COSINE"]
    assert flat[0]["recall_at_10"] == 1.0
    # A curve, not a point: each index swept over its search parameter. (At this size
    # Milvus may search small segments exhaustively, so recall need not grow with it.)
    for index, key in (("HNSW", "ef"), ("IVF_FLAT", "nprobe")):
        curve = [r for r in run["results"] if r["index"] == index and r["metric"] == "COSINE"]
        assert len(curve) >= 3
        assert [r["search_params"][key] for r in curve] == sorted(
            r["search_params"][key] for r in curve)
        assert all(0 <= r["recall_at_10"] <= 1 for r in curve)
    assert run["cosine_vs_l2_exact_top10_agreement"] == 1.0
    assert all(np.isfinite(r["p50_ms"]) for r in run["results"])
    assert (out / "ann_curves.png").stat().st_size > 10_000
    assert "search params" in (out / "ann.md").read_text()


def test_retrieval_on_a_hand_made_gallery():
    """Three images; P appears labelled in img0 and img1 and as a bystander in img2."""
    from revsearch.eval.lfw import Gallery, retrieval

    e = np.eye(4, dtype=np.float32)
    p1, p2, q, bystander_p = e[0], (e[0] + 0.2 * e[1]), e[2], (e[0] + 0.05 * e[3])
    p2, bystander_p = p2 / np.linalg.norm(p2), bystander_p / np.linalg.norm(bystander_p)
    faces = np.stack([p1, p2, q, bystander_p])  # img0: p1; img1: p2; img2: q + bystander
    g = Gallery(paths=["P/P_1", "P/P_2", "Q/Q_1"], labels=np.array(["P", "P", "Q"]),
                face_vectors=faces, face_starts=np.array([0, 1, 2]),
                labelled_face=np.array([0, 1, 2]),  # queries: p1, p2, q
                fallback=np.zeros(3, bool), metric="COSINE")
    r = retrieval(g, max_rank=2)
    # Query img0 (P): img2's bystander (0.9988) beats img1 (0.98): a miss on a bystander.
    # Query img1 (P): img0 first (0.98 > its bystander score 0.97): a hit.
    assert r["queries"] == 2 and r["rank1"] == 0.5 and r["cmc"] == [0.5, 1.0]
    assert r["rank1_misses"] == 1 and r["rank1_misses_on_unlabelled_face"] == 1
    assert r["mAP"] == pytest.approx((0.5 + 1.0) / 2)


@pytest.mark.slow
def test_eval_occlusion_on_a_small_lfw(tmp_path):
    require_data()
    root = _mini_root(tmp_path / "lfw", per_person=6)
    out = tmp_path / "results"
    env = {"REVSEARCH_HOME": str(tmp_path / "home"), "REVSEARCH_WORKERS": "2"}
    res = run_cli("eval", "occlusion", "--lfw", str(root), "--queries", "30", "--out",
                  str(out), env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    result = json.loads((out / "occlusion_lfw_sface.json").read_text())
    runs = result["runs"]
    assert set(runs) == {"clean", "sunglasses", "mask", "patch"}
    assert all(r["queries"] == 30 for r in runs.values())
    # Six people: clean queries find their person (only the faceless walls are lost);
    # covering the eyes costs more than that, before and after occlusion handling.
    for when in ("before", "after"):
        clean, covered = runs["clean"][when], runs["sunglasses"][when]
        assert clean["rank1"] >= 0.9 and clean["lost"] <= 2
        assert covered["mAP"] < clean["mAP"]
    # Handling must not cost clean queries anything, nor lose a face it had found.
    assert runs["clean"]["after"]["rank1"] >= runs["clean"]["before"]["rank1"]
    assert all(r["after"]["lost"] <= r["before"]["lost"] for r in runs.values())
    confusion = result["detector_confusion"]
    assert set(confusion) == set(runs) and sum(confusion["clean"].values()) == 30
    assert (out / "occlusion_lfw_sface.md").is_file()
    assert (out / "occlusion_examples.png").read_bytes()[:4] == b"\x89PNG"


def test_ann_sweep_on_a_server_measures_the_built_index(server):
    """On a server the index is built before the first timed search: probing one IVF
    list must miss neighbours that probing more lists finds (an unindexed collection is
    searched exhaustively and would score 1.0 throughout)."""
    from revsearch.eval import ann

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20_000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    run = ann.compare_indexes(vectors, n_queries=20, uri=server, metrics=("COSINE",),
                              indexes=("IVF_FLAT",))
    curve = [r["recall_at_10"] for r in run["results"]]
    assert len(curve) >= 3 and not run["refused"]
    assert curve[0] < 0.9 and curve[0] < curve[-1]
    # More lists probed, exact distances within them: never fewer true neighbours.
    assert curve == sorted(curve)


@pytest.mark.slow
def test_eval_people_on_a_small_lfw(tmp_path):
    """`revsearch eval people` (the LFW part): each method's threshold is chosen on the
    development people and scored on the others; the shipped path is timed."""
    require_data()
    root = _mini_root(tmp_path / "lfw", per_person=8)
    dev = PEOPLE[:3]
    (root / "pairsDevTrain.txt").write_text(
        "1\n" + f"{dev[0]}\t1\t2\n" + f"{dev[1]}\t1\t{dev[2]}\t1\n")
    out = tmp_path / "results"
    env = {"REVSEARCH_HOME": str(tmp_path / "home"), "REVSEARCH_WORKERS": "2"}
    res = run_cli("eval", "people", "--lfw", str(root), "--ytf", str(tmp_path / "no_ytf"),
                  "--out", str(out), env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    r = json.loads((out / "people_lfw.json").read_text())["lfw"]
    assert (r["dev_people"], r["test_people"]) == (3, 3)
    assert r["dev_faces"] + r["test_faces"] == r["labelled"] >= 40
    best = r["methods"][r["best"]]
    # Six well-photographed people: the chosen method separates the held-out three.
    assert best["test"]["bcubed_f"] >= 0.8, best["test"]
    assert r["product"]["new_photos"] == (6 * 8 + 2) // 4
    assert r["product"]["update"]["items"] >= 1
    for name in ("people_lfw.md", "people_lfw_curves.png", "people_lfw_contact.png"):
        assert (out / name).is_file(), name
