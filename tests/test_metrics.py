"""Metric code against cases computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from revsearch.eval import metrics


def test_ranks_and_average_precision():
    scores = np.array([0.9, 0.1, 0.8, 0.3])
    relevant = np.array([False, True, True, False])
    ranks = metrics.ranks_of_relevant(scores, relevant)
    assert ranks.tolist() == [2, 4]  # order: 0.9, 0.8 (rel), 0.3, 0.1 (rel)
    assert metrics.average_precision(ranks) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert metrics.precision_at(ranks, 2) == 0.5
    assert metrics.average_precision(np.array([1, 2, 3])) == 1.0


def test_cmc():
    assert metrics.cmc(np.array([1, 3, 2, 10]), 3).tolist() == [0.25, 0.5, 0.75]


def test_roc_auc_counts_pairs_and_ties():
    # pos 0.9 beats both negatives, pos 0.4 beats only 0.1: 3 of 4 pairs.
    assert metrics.roc_auc([0.9, 0.4, 0.5, 0.1], [True, True, False, False]) == 0.75
    assert metrics.roc_auc([0.5, 0.5], [True, False]) == 0.5


def test_roc_points_with_ties():
    far, tar, thr = metrics.roc([0.9, 0.8, 0.8, 0.1], [True, False, True, False])
    assert far.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tar.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert thr[1:].tolist() == [0.9, 0.8, 0.1]


def test_best_threshold_and_ten_fold():
    assert metrics.best_threshold([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == \
        pytest.approx(0.5)
    scores = np.array([0.1, 0.9, 0.6, 0.7])
    same = np.array([False, True, False, True])
    folds = np.array([0, 0, 1, 1])
    result = metrics.ten_fold_accuracy(scores, same, folds)
    # Fold 0 tested at 0.65 (fitted on fold 1): both right. Fold 1 tested at 0.5: 0.6 is a
    # false accept, so one of two right.
    assert result["folds"] == [1.0, 0.5]
    assert result["mean"] == 0.75 and result["std"] == 0.25


def test_tar_at_far():
    scores = np.array([0.95, 0.9, 0.45, 0.7, 0.2, 0.1, 0.3, 0.4, 0.5, 0.05])
    same = np.array([True, True, True, False, False, False, False, False, False, False])
    # One of 7 negatives may pass (0.7): the cut sits just above 0.5, so 0.45 fails.
    r = metrics.tar_at_far(scores, same, 1 / 7)
    assert r["far"] == pytest.approx(1 / 7) and r["tar"] == pytest.approx(2 / 3)
