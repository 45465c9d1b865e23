"""Threshold maths on hand-computed cases, and the shipped thresholds re-checked on LFW."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import LFW_ROOT, require_data

from revsearch.config import load_settings
from revsearch.eval import calibrate
from revsearch.eval.datasets import read_pairs
from revsearch.eval.metrics import binomial_interval
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


def test_binomial_interval_known_values():
    # Clopper-Pearson: 0 of 100 -> [0, 0.0362]; 5 of 100 -> [0.0164, 0.1128].
    assert binomial_interval(0, 100) == (0.0, pytest.approx(0.03622, abs=1e-4))
    lo, hi = binomial_interval(5, 100)
    assert lo == pytest.approx(0.01643, abs=1e-4) and hi == pytest.approx(0.11283, abs=1e-4)
    lo, hi = binomial_interval(1271, 1_197_943)  # millions of pairs: still fast and tight
    assert lo < 1271 / 1_197_943 < hi and hi - lo < 2.5e-4


def test_rates_state_the_interval_of_the_far():
    r = calibrate.rates([0.9], np.linspace(0, 1, 100, endpoint=False), 0.95)
    assert r["false_accepts"] == 5 and r["far_ci"][0] < 0.05 < r["far_ci"][1]


def test_single_threshold_files_still_read(tmp_path):
    old = {"key": "mine", "threshold": 0.4, "target_far": 0.001, "model_sha256": "ab",
           "detector": "yunet", "train": {"far": 0.001}, "test": {}, "command": "c",
           "created": "2026-01-01"}
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / "mine.json").write_text(json.dumps(old))
    cal = calibration.load("mine", tmp_path)
    assert cal.fars == [0.001] and cal.point(1e-3).threshold == 0.4
    assert cal.point(1e-4) is None
    # A new file round-trips with all its points.
    calibration.save(calibration.Calibration(
        "new", "ab", "yunet", [calibration.OperatingPoint(f, 1 - f) for f in calibration.FARS]),
        tmp_path / "calibration")
    new = calibration.load("new", tmp_path)
    assert new.fars == list(calibration.FARS) and new.point(0.0001).threshold == 1 - 1e-4


# Every shipped calibration holds the three operating points (refit with
# `revsearch calibrate --package --space KEY --kinds`).
@pytest.mark.parametrize("key", ["sface", "sface_flip", "dlib", "sface_dlib"])
def test_shipped_calibrations_hold_every_operating_point(key):
    cal = calibration.load(key, calibration.packaged_dir())
    assert cal is not None and cal.fars == list(calibration.FARS)
    thresholds = [cal.point(f).threshold for f in calibration.FARS]
    assert thresholds == sorted(thresholds)  # a stricter point has a higher threshold
    for far in calibration.FARS:
        point = cal.point(far)
        assert point.train["far"] <= far and point.test["n_impostor"] > 1_000_000
        assert point.test["far_ci"][0] <= point.test["far"] <= point.test["far_ci"][1]
        assert point.norm_threshold is not None


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
    stored = calibration.from_dict(
        json.loads((calibration.packaged_dir() / f"{key}.json").read_text()))
    assert stored.model_sha256 == MODEL_FILES["sface"].sha256
    settings = load_settings(embedder="sface", workers=2)
    [pairs] = read_pairs(LFW_ROOT / "pairsDevTest.txt")
    sample = pairs[:150] + pairs[500:650]
    scores = calibrate.pair_scores(Pipeline(settings, threads=2), LFW_ROOT, sample)
    for far, tar in ((1e-2, 0.97), (1e-3, 0.95)):  # 1e-4 needs more pairs than a test has
        point = stored.point(far)
        measured = calibrate.rates(scores["genuine"], scores["impostor"], point.threshold)
        assert measured["n_impostor"] > 10_000
        assert measured["far"] <= 3 * far
        assert measured["tar"] >= tar


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
    out = run_cli("calibrate", "--lfw", str(root), env=env)
    assert out.returncode == 0, out.stderr
    written = calibration.from_dict(
        json.loads((tmp_path / "home" / "calibration" / "sface.json").read_text()))
    assert written.fars == list(calibration.FARS)
    point = written.point(1e-2)
    assert point.train["n_genuine"] == 8
    # All different-person pairs among the 16 images: 16*15/2 - 4*(4*3/2) = 96.
    assert point.train["n_impostor"] == 96
    # 96 pairs allow no false accept at 1e-2: the interval says how little that shows.
    assert point.train["false_accepts"] == 0 and point.train["far_ci"][1] > 0.03
    assert "cannot show a FAR" in out.stdout
    # The user's calibration now overrides the shipped one, at the chosen point.
    res = run_cli("search", str(lfw("Colin_Powell", 5)), "--json", "--far", "1e-2", env=env)
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)[0]
    assert result["threshold"] == pytest.approx(point.threshold)
    assert result["decision"]["far"] == 1e-2 and "LFW" in result["decision"]["source"]


@pytest.mark.slow
def test_calibrate_on_own_folders_states_pairs_and_uncertainty(tmp_path):
    """Same folder = same person: the pairs are counted and each FAR gets its interval."""
    from conftest import copy_people, run_cli

    people = ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder")
    copy_people(tmp_path / "mine", people, 4)
    (tmp_path / "mine" / "notes.txt").write_text("not a photo")  # ignored
    env = {"REVSEARCH_HOME": str(tmp_path / "home"), "REVSEARCH_WORKERS": "2"}
    out = run_cli("calibrate", "--folders", str(tmp_path / "mine"), env=env)
    assert out.returncode == 0, out.stderr
    cal = calibration.load("sface", tmp_path / "home")
    assert cal.source.startswith("folders ")
    point = cal.point(1e-3)
    # 20 photos of 5 people: 5 * 6 genuine pairs, 190 - 30 = 160 impostor pairs.
    assert (point.train["n_genuine"], point.train["n_impostor"]) == (30, 160)
    assert point.train["far_ci"][1] > 0.02  # 160 pairs cannot promise 1e-3
    assert "160 impostor pairs" in out.stdout and "95% interval" in out.stdout
    # One folder is not a calibration.
    (tmp_path / "one" / "x").mkdir(parents=True)
    bad = run_cli("calibrate", "--folders", str(tmp_path / "one"), env=env)
    assert bad.returncode != 0 and "two person folders" in bad.stderr
