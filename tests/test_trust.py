"""Identity decisions users can trust: operating points, the decision carried by every
result, score normalisation, FAR checked per comparison kind, stronger registered models."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, ROOT, lfw, mini_dev_lfw, mini_ytf, require_data

import revsearch
from revsearch.config import load_settings
from revsearch.norm import Cohort, NormParams, asnorm
from revsearch.spaces import Registry, calibration
from revsearch.spaces.calibration import FARS

MODELS = Path(DATA).parent / "models"
ARCFACE = MODELS / "arcface_mbf_w600k_fp32.onnx"


# -- normalisation maths -------------------------------------------------------------------

def test_asnorm_hand_computed():
    # Query side mean 0.2 std 0.1, gallery side mean 0.4 std 0.2, raw 0.6:
    # ((0.6 - 0.2) / 0.1 + (0.6 - 0.4) / 0.2) / 2 = (4 + 1) / 2 = 2.5.
    got = asnorm(np.array([[0.6]]), (np.array([0.2]), np.array([0.1])),
                 (np.array([0.4]), np.array([0.2])))
    assert got[0, 0] == pytest.approx(2.5)


def test_cohort_statistics_leave_the_face_itself_out():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cohort = Cohort.sample(vectors, NormParams(top_k=5, cohort=50))
    mean, std = cohort.stats(vectors[:3])
    sims = vectors[:3] @ vectors.T
    for i in range(3):
        others = np.sort(np.delete(sims[i], i))[::-1][:5]  # itself (1.0) is not a stranger
        assert mean[i] == pytest.approx(others.mean(), abs=1e-6)
        assert std[i] == pytest.approx(others.std(), abs=1e-6)
    assert cohort.usable and not Cohort.sample(vectors[:9], NormParams(top_k=5)).usable


def test_cohort_sample_is_uniform_over_a_stream():
    rows = (np.full(2, i, np.float32) for i in range(10_000))
    cohort = Cohort.sample(rows, NormParams(cohort=500, seed=3))
    assert len(cohort) == 500
    # A reservoir keeps late rows as often as early ones: the mean index is about 5000.
    assert 4500 < cohort.vectors[:, 0].mean() < 5500


# -- decisions in results ------------------------------------------------------------------

@pytest.fixture
def rs(indexed):
    # Closing a Milvus Lite handle stops the process's server for that database, so each
    # test opens (and closes) its own.
    with revsearch.connect(indexed["db"], home=indexed["home"], workers=2) as handle:
        yield handle


@pytest.mark.slow
def test_every_result_carries_its_operating_point(rs):
    query = lfw("Tony_Blair", 50)
    default = rs.search(query, k=8)[0]
    d = default.decision
    assert (d.far, d.score) == (1e-3, "cosine") and "LFW" in d.source
    assert d.threshold == pytest.approx(0.358, abs=0.002) == default.threshold
    strict = rs.search(query, k=8, far=1e-4)[0]
    loose = rs.search(query, k=8, far=1e-2)[0]
    assert loose.decision.threshold < d.threshold < strict.decision.threshold
    for a, b in ((strict, default), (default, loose)):  # stricter points match a subset
        assert {h.image_id for h in a.hits if h.match} <= {h.image_id for h in b.hits if h.match}
    assert all(h.match == (h.similarity >= strict.decision.threshold) for h in strict.hits)
    assert all(h.score is None for h in default.hits)
    with pytest.raises(ValueError, match="not an operating point"):
        rs.search(query, far=0.05)
    v = rs.verify(lfw("Tony_Blair", 50), lfw("Tony_Blair", 51), far=1e-4)
    assert v.decision.far == 1e-4 and v.threshold == strict.decision.threshold
    assert rs.stats()["far"] == 1e-3


def _calibration_with_norm(home: Path, top_k: int) -> calibration.Calibration:
    """The shipped sface calibration, copied into `home` with its normalisation's top k
    changed (a small index needs a small k)."""
    cal = calibration.load("sface", home)
    assert cal.norm["exclude_above"] == pytest.approx(cal.point(1e-2).threshold)
    cal.norm = {**cal.norm, "top_k": top_k, "cohort": 2000}
    calibration.save(cal, home / "calibration")
    return cal


@pytest.mark.slow
def test_normalised_search_carries_the_cosine_and_the_score(indexed, tmp_path):
    home = tmp_path / "home"
    cal = _calibration_with_norm(home, top_k=10)
    with revsearch.connect(indexed["db"], home=home, workers=2) as plain:
        [raw] = plain.search(lfw("Tony_Blair", 50), k=8)
    with revsearch.connect(indexed["db"], home=home, workers=2, norm="asnorm") as normed:
        [result] = normed.search(lfw("Tony_Blair", 50), k=8)
        assert len(normed.cohort()) == normed.stats()["faces"]  # a small index: all of it
    d = result.decision
    assert d.score == "asnorm" and d.far == 1e-3
    assert d.threshold == cal.point(1e-3).norm_threshold
    assert [h.similarity for h in result.hits] == [h.similarity for h in raw.hits]
    assert all(h.score is not None and h.match == (h.score >= d.threshold)
               for h in result.hits)
    assert result.hits[0].label == "Tony_Blair" and result.hits[0].match
    # The score is AS-norm against the cohort: higher for a better cosine of one query.
    scores = [h.score for h in result.hits]
    assert scores[0] > scores[-1]


@pytest.mark.slow
def test_normalisation_without_a_usable_cohort_says_so(indexed, tmp_path):
    home = tmp_path / "home"
    _calibration_with_norm(home, top_k=5000)  # needs 10000 faces; the index has ~150
    with revsearch.connect(indexed["db"], home=home, workers=2, norm="asnorm") as normed:
        [result] = normed.search(lfw("Tony_Blair", 50), k=3)
    d = result.decision
    assert d.score == "cosine" and "needs at least 10000 indexed faces" in d.note
    assert all(h.score is None for h in result.hits) and result.hits[0].match


@pytest.mark.slow
def test_uncalibrated_registered_space_says_so_in_every_result(tmp_path, subset_dir):
    from test_spaces import SFACE_INPUT, _user_sface

    home = tmp_path / "home"
    Registry(home).add_onnx("mine", _user_sface(tmp_path), onnx_input=SFACE_INPUT)
    with revsearch.connect(str(tmp_path / "x.db"), home=home, space="mine",
                           workers=1) as mine:
        mine.index([subset_dir / "Tony_Blair"])
        [result] = mine.search(lfw("Tony_Blair", 50), k=3)
        verdict = mine.verify(lfw("Tony_Blair", 50), lfw("Tony_Blair", 51))
    for d in (result.decision, verdict.decision):
        assert d.threshold is None and "mine is not calibrated" in d.note
        assert "revsearch calibrate --space mine" in d.note
    assert result.hits and all(h.match is None for h in result.hits)
    assert verdict.match is None


@pytest.mark.slow
def test_cli_and_json_show_the_decision(indexed, tmp_path):
    from conftest import run_cli

    db = str(tmp_path / "copy.db")  # another process: its own copy of the database
    shutil.copytree(indexed["db"], db)
    env = {"REVSEARCH_HOME": str(indexed["home"]), "REVSEARCH_WORKERS": "2"}
    q = str(lfw("Tony_Blair", 50))
    text = run_cli("search", q, "--db", db, "-k", "3", "--far", "1e-4", env=env)
    assert text.returncode == 0, text.stderr
    assert "FAR 0.0001" in text.stdout and "calibrated on LFW" in text.stdout
    as_json = run_cli("verify", q, str(lfw("Tony_Blair", 51)), "--json", "--db", db, env=env)
    body = json.loads(as_json.stdout)
    assert body["decision"]["far"] == 1e-3 and body["decision"]["score"] == "cosine"
    bad = run_cli("search", q, "--db", db, "--far", "0.05", env=env)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr


# -- FAR where it is used, and normalisation, on small real subsets ------------------------

@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    if not (DATA / "ytf").is_dir():
        pytest.skip("no shared YouTube Faces")
    root = tmp_path_factory.mktemp("mini")
    return {"lfw": mini_dev_lfw(root / "lfw", people=12, per_person=3),
            "ytf": mini_ytf(root / "ytf", people=5), "home": root / "home"}


@pytest.mark.slow
def test_eval_far_measures_every_kind_against_the_calibration(mini, tmp_path):
    from revsearch.eval.far import evaluate_far

    settings = load_settings(home=mini["home"], workers=1, progress=False)
    r = evaluate_far(mini["lfw"], settings, tmp_path, str(tmp_path / "g.db"), mini["ytf"])
    kinds = {(row["kind"], row["method"]) for row in r["rows"]}
    assert {("photo", "before"), ("track", "before"), ("photo_track", "before"),
            ("track", "after"), ("photo_track", "after")} <= kinds
    lfw_row = r["rows"][0]
    # 12 DevTest people x 3 photos: 12 * 3 genuine pairs, 36 * 35 / 2 - 36 impostor pairs.
    assert (lfw_row["n_genuine"], lfw_row["n_impostor"]) == (36, 594)
    used = calibration.load("sface", mini["home"])
    assert [p["threshold"] for p in lfw_row["points"]] == [
        round(used.point(f).threshold, 5) for f in used.fars]
    for row in r["rows"]:
        for p in row["points"]:
            assert p["far_ci"][0] <= p["far"] <= p["far_ci"][1]
            assert p["verdict"] in {"within 2x", "over 2x", "under 2x", "borderline"}
    assert r["ytf"]["eligible_people"] == r["ytf"]["people"] - r["ytf"]["excluded_devtrain_names"]
    assert "Stated vs measured" in (tmp_path / "far_sface.md").read_text()


@pytest.mark.slow
def test_eval_norm_chooses_on_devtrain_and_reports_held_out(mini, tmp_path):
    from revsearch.eval.norm import evaluate_norm

    settings = load_settings(home=mini["home"], workers=1, progress=False)
    r = evaluate_norm(mini["lfw"], settings, tmp_path, str(tmp_path / "g.db"), mini["ytf"])
    chosen = r["selection"]["chosen"]
    assert chosen["cohort"] <= r["selection"]["cohort_pool"]
    assert 2 * chosen["top_k"] <= chosen["cohort"]
    methods = {(p["method"], p["stated_far"]) for p in r["held_out"]["points"]}
    variants = ("cosine", "asnorm", "asnorm_keeping_matches")
    assert methods == {(m, f) for m in variants for f in FARS}
    assert set(r["ytf"]) == set(variants)
    assert r["params"]["exclude_above"] == pytest.approx(
        next(p["threshold"] for p in r["held_out"]["points"]
             if p["method"] == "cosine" and p["stated_far"] == 1e-2))
    assert {g["gallery"] for g in r["growth"]} == {72}  # the whole mini gallery
    assert "AS-norm" in (tmp_path / "norm_sface.md").read_text()


# -- a stronger registered model (research licence: only where the file is) ---------------

@pytest.mark.slow
def test_research_arcface_model_registers_and_fuses(tmp_path):
    if not ARCFACE.is_file():
        pytest.skip(f"no {ARCFACE} (the research-licensed model is not shipped)")
    require_data()
    from test_spaces import _central_vector

    from revsearch.faces.pipeline import Pipeline
    from revsearch.media import load_image

    home = tmp_path / "home"
    reg = Registry(home)
    arc = reg.add_onnx("arc", ARCFACE, licence="InsightFace: non-commercial research only")
    assert arc.dim == 512 and arc.calibration(home) is None
    fused = reg.add_fusion("sface_arc", ["sface", "arc"])
    assert fused.dim == 640 and "research" in fused.licence
    images = [load_image(lfw(n, i)) for n, i in (("Tony_Blair", 1), ("Tony_Blair", 2),
                                                  ("Colin_Powell", 1))]
    vectors = {}
    for name in ("sface", "arc", "sface_arc"):
        pipe = Pipeline(load_settings(home=home, space=name))
        vectors[name] = np.stack([_central_vector(pipe, im) for im in images])
    for v in vectors.values():
        sims = v @ v.T
        assert sims[0, 1] > 0.4 > sims[0, 2]  # same person above, stranger below
    # The fused cosine is the mean of the members' cosines.
    fused_sims = vectors["sface_arc"] @ vectors["sface_arc"].T
    mean = (vectors["sface"] @ vectors["sface"].T + vectors["arc"] @ vectors["arc"].T) / 2
    assert np.allclose(fused_sims, mean, atol=1e-5)


def test_results_pages_with_research_models_carry_the_licence_caveat():
    pages = [p for p in (ROOT / "docs" / "results").glob("*.md")
             if "arcface" in p.name or "arcface" in p.read_text()]
    for page in pages:
        assert "non-commercial research" in page.read_text(), page.name


def test_decision_round_trips_through_the_rest_model():
    from revsearch.serve.models import DecisionOut
    from revsearch.spaces.calibration import Decision

    d = Decision(1e-3, 0.358, "cosine", "LFW", "", {"track": 0.4})
    assert DecisionOut(**asdict(d)).model_dump() == asdict(d)
    assert d.threshold_for("track") == 0.4 and d.threshold_for("photo") == 0.358
    assert Decision(None, None).threshold_for("track") is None


def test_video_comparisons_are_judged_at_their_own_threshold():
    from revsearch.search import Judge, comparison_kind
    from revsearch.spaces.calibration import Decision
    from revsearch.store import FaceHit

    def hit(media_type: str, similarity: float) -> FaceHit:
        return FaceHit("f", "i", "p", 0, [0, 0, 1, 1], similarity, "", media_type=media_type)

    assert [comparison_kind(q, m) for q, m in (("image", "image"), ("video", "video"),
                                               ("image", "video"), ("video", "image"))] == \
        ["photo", "track", "photo_track", "photo_track"]
    shipped = calibration.load("sface", calibration.packaged_dir()).point(1e-3)
    assert shipped.by_kind["track"] > shipped.by_kind["photo_track"] > shipped.threshold
    judge = Judge(Decision(1e-3, shipped.threshold, by_kind=shipped.by_kind))
    between = (shipped.threshold + shipped.by_kind["photo_track"]) / 2
    hits = [hit("image", between), hit("video", between)]
    assert [m for _, m in judge.judge(np.zeros((1, 2)), hits, "image")] == [True, False]
    assert [m for _, m in judge.judge(np.zeros((1, 2)), hits, "video")] == [False, False]
