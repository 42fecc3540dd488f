"""Bias metrics: Wasserstein-1 and KS against scipy (inputs full of ties), hand-computed groups,
per-group FNMR against a brute force and against evrc's fixed-threshold curve."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from fiqa_bench.metrics import (
    all_vs_all,
    comparisons_from_scores,
    evrc,
    group_distributions,
    group_error_rates,
    pairwise_group_tests,
    rank_percentiles,
    threshold_at_fmr,
    wasserstein_1d,
)

tied = st.lists(st.integers(-3, 3), min_size=1, max_size=40)


# --------------------------------------------------------------------------- Wasserstein-1


@settings(max_examples=150, deadline=None)
@given(tied, tied, st.floats(0.1, 10.0))
def test_wasserstein_equals_scipy_on_ties(a, b, scale):
    x, y = np.array(a) * scale, np.array(b, dtype=float) * 0.37 * scale
    assert wasserstein_1d(x, y) == pytest.approx(scipy.stats.wasserstein_distance(x, y), rel=1e-12, abs=1e-12)
    assert wasserstein_1d(x, y) == pytest.approx(wasserstein_1d(y, x), rel=1e-12, abs=1e-15)


def test_wasserstein_hand_cases():
    # F_a - F_b: 1/2 - 2/3 on [0, 1), 1 - 2/3 on [1, 3): 1/6 + 2/3
    assert wasserstein_1d([0.0, 1.0], [0.0, 0.0, 3.0]) == pytest.approx(5 / 6, abs=1e-15)
    assert wasserstein_1d([2.0, 2.0, 5.0], [5.0, 2.0, 2.0]) == 0.0  # same multiset, any order
    a = np.array([0.3, 1.0, 1.0, 4.0])
    assert wasserstein_1d(a + 2.5, a) == pytest.approx(2.5)  # a shift moves every quantile
    assert wasserstein_1d([7.0], [1.0, 3.0]) == pytest.approx(5.0)  # |7-1|/2 + |7-3|/2


def test_wasserstein_larger_samples_match_scipy():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=3000), 1)
    y = np.round(rng.normal(0.2, 1.3, size=1700), 1)
    assert wasserstein_1d(x, y) == pytest.approx(scipy.stats.wasserstein_distance(x, y), rel=1e-10)


def test_wasserstein_rejects_bad_input():
    with pytest.raises(ValueError, match="b is empty"):
        wasserstein_1d([1.0], [])
    with pytest.raises(ValueError, match="non-finite.*index 1"):
        wasserstein_1d([1.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        wasserstein_1d(np.ones((2, 2)), [1.0])
    with pytest.raises(TypeError, match="numeric"):
        wasserstein_1d(["a"], [1.0])


# --------------------------------------------------------------------------- rank percentiles


def test_rank_percentiles_mid_distribution_and_invariance():
    q = np.array([3.0, 1.0, 3.0, np.nan, 2.0])
    p = rank_percentiles(q)
    np.testing.assert_allclose(p, [0.75, 0.125, 0.75, np.nan, 0.375])
    rng = np.random.default_rng(0)
    q = rng.integers(0, 6, 200).astype(float)
    q[::17] = np.nan
    np.testing.assert_array_equal(rank_percentiles(np.exp(q) - 40.0), rank_percentiles(q))
    expected = scipy.stats.rankdata(q[~np.isnan(q)]) - 0.5  # average ranks, mid-point
    np.testing.assert_allclose(rank_percentiles(q)[~np.isnan(q)], expected / np.sum(~np.isnan(q)))
    assert np.isnan(rank_percentiles(np.array([np.nan, np.nan]))).all()


# --------------------------------------------------------------------------- group distributions


def test_group_distributions_by_hand():
    q = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 10.0, 20.0, np.nan, 5.0])
    g = ["a", "a", "a", "a", "a", "b", "b", None, None]
    r = group_distributions(q, g)
    a, b = r.get("a"), r.get("b")
    assert (a.n_images, a.n_finite, a.n_nan) == (5, 4, 1)
    assert (a.mean, a.median, a.q1, a.q3, a.minimum, a.maximum) == (2.5, 2.5, 1.75, 3.25, 1.0, 4.0)
    assert (b.n_images, b.mean, b.median) == (2, 15.0, 15.0)
    assert (r.n_unlabelled, r.n_unlabelled_nan) == (2, 1)
    assert group_distributions(q, g[:7] + [float("nan"), np.nan]).n_unlabelled == 2  # NaN labels = missing
    json.dumps(r.to_dict())
    assert "| a | 5 | 1 | 2.5 | 2.5 |" in r.to_markdown()


def test_group_order_absent_groups_and_label_types():
    q = np.array([1.0, 2.0, 3.0])
    r = group_distributions(q, np.array([1, 0, 1]), order=[1, 2, 0])
    assert [g.group for g in r.groups] == [1, 2, 0]
    assert type(r.groups[0].group) is int  # numpy scalars become Python values
    empty = r.get(2)
    assert empty.n_images == 0 and np.isnan(empty.mean)
    assert r.to_dict()["groups"][1]["mean"] is None
    with pytest.raises(ValueError, match="group 'x' is not in order"):
        group_distributions(q, ["a", "x", "a"], order=["a"])
    with pytest.raises(ValueError, match="twice"):
        group_distributions(q, ["a", "a", "a"], order=["a", "a"])
    with pytest.raises(ValueError, match="2 labels for 3 samples"):
        group_distributions(q, ["a", "b"])
    with pytest.raises(ValueError, match="infinite.*index 1"):
        group_distributions(np.array([1.0, np.inf, 0.0]), ["a", "a", "a"])
    with pytest.raises(TypeError, match="not a string"):
        group_distributions(q, "abc")


# --------------------------------------------------------------------------- pairwise tests


def test_pairwise_tests_against_scipy_and_rank_invariance():
    rng = np.random.default_rng(1)
    q = np.round(rng.normal(size=300), 1)
    g = np.array(["x", "y", "z"])[rng.integers(0, 3, 300)].tolist()
    q[:5] = np.nan
    r = pairwise_group_tests(q, g)
    assert [(p.group_a, p.group_b) for p in r.pairs] == [("x", "y"), ("x", "z"), ("y", "z")]
    ga, finite = np.array(g), ~np.isnan(q)
    for p in r.pairs:
        a, b = q[(ga == p.group_a) & finite], q[(ga == p.group_b) & finite]
        ks = scipy.stats.ks_2samp(a, b)
        assert (p.n_a, p.n_b) == (len(a), len(b))
        assert p.ks_statistic == pytest.approx(ks.statistic) and p.ks_pvalue == pytest.approx(ks.pvalue)
        assert p.wasserstein == pytest.approx(scipy.stats.wasserstein_distance(a, b), rel=1e-12)
        assert 0 <= p.wasserstein_rank < 1 and p.reason is None
    # a strictly increasing transform: raw distance changes, rank distance and KS do not
    t = pairwise_group_tests(np.exp(3 * q), g)
    for p, s in zip(r.pairs, t.pairs):
        assert s.wasserstein != pytest.approx(p.wasserstein)
        assert s.wasserstein_rank == pytest.approx(p.wasserstein_rank, abs=1e-15)
        assert s.ks_statistic == pytest.approx(p.ks_statistic)
    assert r.get("z", "x") is r.pairs[1]
    assert r.max_wasserstein_rank() == max(p.wasserstein_rank for p in r.pairs)
    json.dumps(r.to_dict())


def test_rank_distance_by_hand_counts_unlabelled_images():
    # percentiles over all 5 images (the unlabelled one too): 0.1, 0.3, 0.5, 0.7, 0.9
    q = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    r = pairwise_group_tests(q, ["a", "a", "b", "b", None])
    p = r.get("a", "b")
    assert p.wasserstein == pytest.approx(2.0)
    assert p.wasserstein_rank == pytest.approx(0.4)  # {0.1, 0.3} vs {0.5, 0.7} over 5 images
    assert p.ks_statistic == 1.0
    assert r.n_finite_total == 5


def test_small_group_gives_nan_and_reason():
    q = np.array([1.0, 2.0, 3.0, np.nan, 5.0])
    r = pairwise_group_tests(q, ["a", "a", "b", "b", "c"], order=["a", "b", "c", "d"])
    ab = r.get("a", "b")
    assert ab.n_b == 1 and np.isnan(ab.wasserstein) and np.isnan(ab.ks_pvalue)
    assert "group 'b' has 1 finite qualities" in ab.reason and "need >= 2" in ab.reason
    assert "group 'd' has 0" in r.get("a", "d").reason
    assert r.to_dict()["pairs"][0]["wasserstein"] is None
    assert "need >= 2" in r.to_markdown()
    assert np.isnan(r.max_wasserstein_rank())


# --------------------------------------------------------------------------- per-group error rates


def brute_group_rates(gs, gp, q, groups, t, phis):
    """Filter and count at every point: the obvious implementation."""
    key = np.where(np.isnan(q), -np.inf, q)
    n = len(q)
    levels = np.unique(key)
    rows = []
    for phi in phis:
        kept = np.ones(n, dtype=bool)
        for lv in levels:  # largest set of whole tie groups with fraction <= phi
            if np.sum(key <= lv) / n <= phi:
                kept = key > lv
        row = {"achieved": 1 - kept.mean()}
        for label in sorted(set(x for x in groups if x is not None)):
            member = np.array([x == label for x in groups])
            within = member[gp[:, 0]] & member[gp[:, 1]] & kept[gp[:, 0]] & kept[gp[:, 1]]
            row[label] = (np.mean(gs[within] < t) if within.any() else np.nan, int(within.sum()),
                          np.sum(member & ~kept) / member.sum())
        alive = kept[gp[:, 0]] & kept[gp[:, 1]]
        row["all"] = np.mean(gs[alive] < t) if alive.any() else np.nan
        rows.append(row)
    return rows


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_group_error_rates_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 30
    ids = rng.integers(0, 8, n)
    comp = all_vs_all(rng.normal(size=(n, 4)) + ids[:, None] * 0.3, ids, dtype=np.float64)
    q = rng.integers(0, 6, n).astype(float)
    q[rng.random(n) < 0.1] = np.nan
    groups = [None if rng.random() < 0.1 else ("f" if rng.random() < 0.4 else "m") for _ in range(n)]
    t = float(np.median(comp.genuine_scores))
    phis = np.array([0.0, 0.1, 0.25, 0.5, 0.8])
    r = group_error_rates(comp, groups, q, t, phis)
    brute = brute_group_rates(comp.genuine_scores, comp.genuine_pairs.astype(int), q, groups, t, phis)
    for j, row in enumerate(brute):
        assert r.discard_achieved[j] == pytest.approx(row["achieved"])
        np.testing.assert_allclose(r.fnmr_all[j], row["all"])
        for curve in r.groups:
            fnmr, n_gen, share = row[curve.group]
            np.testing.assert_allclose(curve.fnmr[j], fnmr)
            assert curve.n_genuine[j] == n_gen
            assert curve.images_discarded[j] == pytest.approx(share)


def test_group_error_rates_by_hand_with_mixed_and_unlabelled_pairs():
    # samples 0-5; genuine pairs: (0,1) f-f, (2,3) m-m, (1,4) f-m mixed, (0,5) f-None
    groups = ["f", "f", "m", "m", "m", None]
    gp = np.array([[0, 1], [2, 3], [1, 4], [0, 5]])
    gs = np.array([0.2, 0.9, 0.1, 0.3])
    comp = comparisons_from_scores(gs, gp, np.array([0.0]), np.array([[1, 2]]), n_samples=6)
    q = np.array([0.5, 0.9, 0.8, 0.7, 0.6, np.nan])
    r = group_error_rates(comp, groups, q, 0.5, [0.0, 1 / 6, 2 / 6, 0.5])
    assert (r.n_genuine_mixed, r.n_genuine_unlabelled, r.n_unlabelled_images, r.n_nan_images) == (1, 1, 1, 1)
    f, m = r.get("f"), r.get("m")
    assert f.n_genuine_total == 1 and m.n_genuine_total == 1
    np.testing.assert_allclose(f.fnmr, [1.0, 1.0, np.nan, np.nan])  # sample 0 (q=0.5) goes 2nd
    np.testing.assert_allclose(m.fnmr, [0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(r.fnmr_all, [0.75, 2 / 3, 0.5, 0.0])  # NaN sample 5 goes 1st, then 0, then 4
    np.testing.assert_array_equal(f.n_images_discarded, [0, 0, 1, 1])
    np.testing.assert_allclose(m.images_discarded, [0, 0, 0, 1 / 3])  # sample 4 (q=0.6) goes 3rd
    np.testing.assert_allclose(r.discard_achieved, [0, 1 / 6, 2 / 6, 0.5])
    d = r.to_dict()
    json.dumps(d)
    assert d["groups"][0]["fnmr"][2] is None and d["mixed_genuine_pairs"].startswith("excluded")
    assert "| 0.00 | 0.0000 | 1.0000 | 0.0000 |" in r.to_markdown(at=[0.0])


def test_fnmr_all_equals_evrc_fixed_curve_and_one_group_equals_all():
    rng = np.random.default_rng(5)
    ids = np.repeat(np.arange(40), 4)
    comp = all_vs_all(rng.normal(size=(160, 8)) + 0.6 * rng.normal(size=(40, 8))[ids], ids)
    q = rng.integers(0, 20, 160).astype(float)
    thr = threshold_at_fmr(comp.impostor_scores, 0.05)
    curve = evrc(comp, q, fmrs=0.05, policies="fixed").curves[0]
    r = group_error_rates(comp, ["all"] * 160, q, thr.threshold)
    np.testing.assert_allclose(r.fnmr_all, curve.fnmr)
    np.testing.assert_allclose(r.discard_achieved, curve.discard_achieved)
    np.testing.assert_array_equal(r.n_genuine_all, curve.n_genuine)
    np.testing.assert_allclose(r.get("all").fnmr, curve.fnmr)
    np.testing.assert_allclose(r.get("all").images_discarded, curve.discard_achieved)


def test_group_error_rates_errors():
    comp = comparisons_from_scores(np.array([0.5]), np.array([[0, 1]]), np.array([0.1]), np.array([[0, 2]]),
                                   n_samples=3)
    q = np.array([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="threshold must be finite"):
        group_error_rates(comp, ["a"] * 3, q, float("nan"))
    with pytest.raises(ValueError, match="2 labels for 3 samples"):
        group_error_rates(comp, ["a"] * 2, q, 0.3)
    with pytest.raises(ValueError, match="strictly increasing"):
        group_error_rates(comp, ["a"] * 3, q, 0.3, [0.2, 0.1])
    with pytest.raises(ValueError, match="qualities has 2 values"):
        group_error_rates(comp, ["a"] * 3, q[:2], 0.3)
    with pytest.raises(TypeError, match="Comparisons"):
        group_error_rates("c", ["a"] * 3, q, 0.3)
    empty = comparisons_from_scores(np.zeros(0), np.zeros((0, 2), int), np.array([0.1]), np.array([[0, 2]]),
                                    n_samples=3)
    with pytest.raises(ValueError, match="genuine comparison set is empty"):
        group_error_rates(empty, ["a"] * 3, q, 0.3)
