"""Threshold maths on hand-computed cases, and the shipped thresholds re-checked on LFW."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import LFW_ROOT, require_data

from revsearch.config import load_settings
from revsearch.eval import calibrate
from revsearch.eval.datasets import read_pairs
from revsearch.faces.models import MODEL_FILES
from revsearch.faces.pipeline import Pipeline
from revsearch.spaces import calibration


def test_threshold_at_far_hand_computed():
    impostor = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.4, 0.6, 0.8, 0.0])
    # 10 scores: FAR 0.2 allows the 2 highest (0.9, 0.8) and must reject 0.7.
    t = calibrate.threshold_at_far(impostor, 0.2)
    assert 0.7 < t <= 0.8
    assert calibrate.rates([], impostor, t)["far"] == pytest.approx(0.2)
    # FAR 0 rejects everything; FAR 1 accepts everything.
    assert calibrate.threshold_at_far(impostor, 0.0) > 0.9
    assert calibrate.threshold_at_far(impostor, 1.0) == pytest.approx(0.0)


def test_threshold_with_ties_never_exceeds_far():
    impostor = np.array([0.5] * 5 + [0.1] * 5, dtype=np.float32)
    t = calibrate.threshold_at_far(impostor, 0.3)
    assert calibrate.rates([], impostor, t)["far"] <= 0.3


def test_rates_hand_computed():
    r = calibrate.rates([0.9, 0.8, 0.3, 0.6], [0.1, 0.65, 0.2, 0.3, 0.4], 0.6)
    assert r["tar"] == 0.75 and r["far"] == 0.2
    assert (r["n_genuine"], r["n_impostor"]) == (4, 5)


def test_read_pairs_official_files():
    require_data()
    folds = read_pairs(LFW_ROOT / "pairs.txt")
    assert len(folds) == 10 and all(len(f) == 600 for f in folds)
    assert sum(p.same for p in folds[3]) == 300
    [train] = read_pairs(LFW_ROOT / "pairsDevTrain.txt")
    [test] = read_pairs(LFW_ROOT / "pairsDevTest.txt")
    assert (len(train), len(test)) == (2200, 1000)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["sface"])
def test_shipped_calibration_holds_on_held_out_pairs(key):
    """The stored threshold, re-measured now on DevTest pairs it was not fitted on."""
    require_data()
    stored = json.loads((calibration.packaged_dir() / f"{key}.json").read_text())
    assert stored["model_sha256"] == MODEL_FILES["sface"].sha256
    settings = load_settings(embedder="sface", workers=2)
    [pairs] = read_pairs(LFW_ROOT / "pairsDevTest.txt")
    sample = pairs[:150] + pairs[500:650]
    scores = calibrate.pair_scores(Pipeline(settings, threads=2), LFW_ROOT, sample)
    measured = calibrate.rates(scores["genuine"], scores["impostor"], stored["threshold"])
    assert measured["n_impostor"] > 10_000
    assert measured["far"] <= 3 * stored["target_far"]
    assert measured["tar"] >= 0.95


def _mini_lfw(dest, people=("George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld")):
    """A small LFW-shaped folder with its own dev pairs files (real photos)."""

    from conftest import LFW, copy_people

    same = [(p, 1, 2) for p in people] + [(p, 3, 4) for p in people]
    diff = [(a, i, b, i + 1) for i in (1, 3) for a in people for b in people if a < b][:8]
    copy_people(dest / "lfw-deepfunneled", people, 4)
    body = [f"{a}\t{i}\t{j}" for a, i, j in same]
    body += [f"{a}\t{i}\t{b}\t{j}" for a, i, b, j in diff]
    for fname in ("pairsDevTrain.txt", "pairsDevTest.txt"):
        (dest / fname).write_text("8\n" + "\n".join(body) + "\n")
    assert LFW.is_dir()
    return dest


@pytest.mark.slow
def test_calibrate_command_writes_a_calibration_search_then_uses(tmp_path):
    require_data()
    from conftest import lfw, run_cli

    root = _mini_lfw(tmp_path / "lfw")
    env = {"REVSEARCH_HOME": str(tmp_path / "home"), "REVSEARCH_WORKERS": "2"}
    out = run_cli("calibrate", "--lfw", str(root), "--far", "0.05", env=env)
    assert out.returncode == 0, out.stderr
    written = json.loads((tmp_path / "home" / "calibration" / "sface.json").read_text())
    assert written["target_far"] == 0.05 and written["train"]["n_genuine"] == 8
    # All different-person pairs among the 16 images: 16*15/2 - 4*(4*3/2) = 96.
    assert written["train"]["n_impostor"] == 96
    assert written["train"]["far"] <= 0.05
    # The user's calibration now overrides the shipped one.
    res = run_cli("search", str(lfw("Colin_Powell", 5)), "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["threshold"] == pytest.approx(written["threshold"])
