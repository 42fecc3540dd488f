"""Thresholds at a target FMR, TAR@FMR and the ROC against independent references."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_curve

from fiqa_bench.metrics import roc, tar_at_fmr, threshold_at_fmr

tied_scores = st.lists(st.integers(-4, 4), min_size=1, max_size=60).map(lambda v: np.array(v, float) / 4)
fmr_values = st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.25, 0.29, 0.3, 1 / 3, 0.5, 0.7, 0.99])


def brute_threshold(impostor: np.ndarray, fmr: float) -> tuple[float, int]:
    """The rule 'accept s > v' with the smallest v (a data value) keeping FMR <= fmr, by enumeration."""
    n = len(impostor)
    for v in sorted(set(impostor.tolist())):
        if np.sum(impostor > v) / n <= fmr:
            return v, int(np.sum(impostor > v))
    raise AssertionError("unreachable: v = max gives FMR 0")


def brute_allowed(fmr: float, n: int) -> int:
    k = 0
    while (k + 1) / n <= fmr:
        k += 1
    return k


@settings(max_examples=300, deadline=None)
@given(tied_scores, tied_scores, fmr_values)
def test_threshold_matches_brute_force(impostor, genuine, fmr):
    r = threshold_at_fmr(impostor, fmr, min_false_matches=0)
    v, n_fm = brute_threshold(impostor, fmr)
    assert not r.insufficient
    assert r.highest_rejected == v
    assert r.n_false_matches == n_fm
    assert r.allowed_false_matches == brute_allowed(fmr, len(impostor))
    # the achieved FMR never exceeds the target, and the rule is exactly "s > v"
    assert r.fmr <= fmr
    assert np.array_equal(impostor >= r.threshold, impostor > v)
    assert np.array_equal(genuine >= r.threshold, genuine > v)
    # lowest such threshold: accepting the rejected value too would exceed the target
    assert np.sum(impostor >= v) / len(impostor) > fmr
    t = tar_at_fmr(genuine, impostor, fmr, min_false_matches=0)
    assert t.tar == np.mean(genuine > v)
    assert t.fnmr == pytest.approx(1 - t.tar)


def test_ties_never_push_fmr_over_target():
    # 10 impostors, 4 tied at the top: FMR 0.3 allows 3 false matches, but the tie forces 0.
    imp = np.array([0.9, 0.9, 0.9, 0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    r = threshold_at_fmr(imp, 0.3, min_false_matches=0)
    assert r.allowed_false_matches == 3 and r.n_false_matches == 0 and r.fmr == 0.0
    assert r.highest_rejected == 0.9 and r.threshold > 0.9
    # 0.29 * 100 is 28.999999999999996 in floating point; 29 false matches are still allowed
    r = threshold_at_fmr(np.arange(100.0), 0.29, min_false_matches=0)
    assert r.allowed_false_matches == 29 and r.n_false_matches == 29 and r.fmr == 0.29


def test_insufficient_comparisons_flagged_not_a_number():
    imp = np.linspace(0, 1, 9_999)
    r = threshold_at_fmr(imp, 1e-3)  # allows 9 < 10 false matches
    assert r.insufficient and np.isnan(r.threshold) and np.isnan(r.fmr)
    assert r.allowed_false_matches == 9
    t = tar_at_fmr(np.array([0.5]), imp, 1e-3)
    assert t.insufficient and np.isnan(t.tar)
    assert "insufficient" in t.to_markdown()
    json.dumps(t.to_dict(), allow_nan=False)
    r = threshold_at_fmr(np.linspace(0, 1, 10_000), 1e-3)  # exactly 10/FMR: enough
    assert not r.insufficient and r.allowed_false_matches == 10


@pytest.mark.parametrize("fmr", [0, 1, -0.1, 1.5, float("nan"), float("inf"), "x", None])
def test_fmr_outside_open_unit_interval(fmr):
    with pytest.raises(ValueError, match=repr(fmr).replace("(", r"\(").replace(")", r"\)")):
        threshold_at_fmr(np.arange(100.0), fmr)


def test_bad_scores():
    with pytest.raises(ValueError, match="non-finite"):
        threshold_at_fmr(np.array([0.1, np.nan]), 0.1)
    with pytest.raises(ValueError, match="empty"):
        threshold_at_fmr(np.array([]), 0.1)
    with pytest.raises(ValueError, match="1-D"):
        threshold_at_fmr(np.zeros((2, 2)), 0.1)
    with pytest.raises(ValueError, match="empty"):
        tar_at_fmr(np.array([]), np.arange(100.0), 0.1)
    with pytest.raises(ValueError, match="min_false_matches"):
        threshold_at_fmr(np.arange(100.0), 0.1, min_false_matches=-1)


def test_float32_scores_threshold_is_exact():
    rng = np.random.default_rng(0)
    imp = rng.random(100_000).astype(np.float32)
    gen = rng.random(1_000).astype(np.float32)
    gen[:5] = np.sort(imp)[-101]  # genuine scores tied with s*
    r = threshold_at_fmr(imp, 1e-3)
    assert r.n_false_matches == np.count_nonzero(imp >= r.threshold) <= 100
    t = tar_at_fmr(gen, imp, 1e-3)
    assert t.tar == np.count_nonzero(gen >= r.threshold) / len(gen)


@settings(max_examples=200, deadline=None)
@given(tied_scores, tied_scores)
def test_roc_equals_sklearn(genuine, impostor):
    r = roc(genuine, impostor)
    y = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    fpr, tpr, thr = roc_curve(y, np.r_[genuine, impostor], drop_intermediate=False)
    np.testing.assert_array_equal(r.thresholds, thr)
    np.testing.assert_array_equal(r.fmr, fpr)
    np.testing.assert_array_equal(r.tar, tpr)


@settings(max_examples=200, deadline=None)
@given(tied_scores, tied_scores, fmr_values)
def test_tar_at_fmr_is_best_sklearn_point(genuine, impostor, fmr):
    """TAR@FMR = the highest TAR among sklearn ROC points with FPR <= target."""
    y = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    fpr, tpr, _ = roc_curve(y, np.r_[genuine, impostor], drop_intermediate=False)
    expected = tpr[fpr <= fmr].max()
    assert tar_at_fmr(genuine, impostor, fmr, min_false_matches=0).tar == pytest.approx(expected, abs=1e-15)
