"""Identity bootstrap: the weighted evaluation equals materialised replicates; intervals behave."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fiqa_bench.metrics import (
    aoc,
    all_vs_all,
    bootstrap_ci,
    bootstrap_difference,
    comparisons_from_scores,
    edc_pauc,
    evrc,
)
from fiqa_bench.metrics._common import check_discard_fractions
from fiqa_bench.metrics.discard import _evaluate, _prepare


def synthetic(seed: int, n_ids: int = 25, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_ids)
    ids = np.repeat(np.arange(n_ids), sizes)
    e = rng.normal(size=(n_ids, 6))[ids] + noise * rng.normal(size=(len(ids), 6))
    e = np.round(e, 1)  # ties in scores
    return all_vs_all(e, ids, dtype=np.float64), rng


def materialise(comp, q, w_id):
    """The replicate as a data set: identity a copied w_a times, no cross-copy pairs."""
    codes = np.unique(comp.identities, return_inverse=True)[1].ravel()
    new_index, labels, new_q = {}, [], []
    for i in range(comp.n_samples):
        for c in range(int(w_id[codes[i]])):
            new_index[i, c] = len(labels)
            labels.append(f"{codes[i]}#{c}")
            new_q.append(q[i])
    gs, gp, is_, ip = [], [], [], []
    for s, (a, b) in zip(comp.genuine_scores, comp.genuine_pairs.astype(int)):
        for c in range(int(w_id[codes[a]])):
            gs.append(s)
            gp.append((new_index[a, c], new_index[b, c]))
    for s, (a, b) in zip(comp.impostor_scores, comp.impostor_pairs.astype(int)):
        for c1 in range(int(w_id[codes[a]])):
            for c2 in range(int(w_id[codes[b]])):
                is_.append(s)
                ip.append((new_index[a, c1], new_index[b, c2]))
    m = comparisons_from_scores(np.array(gs), np.array(gp).reshape(-1, 2), np.array(is_), np.array(ip).reshape(-1, 2),
                                identities=np.array(labels))
    return m, np.array(new_q)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("axis", ["images", "comparisons"])
def test_weighted_replicate_equals_materialised_replicate(seed, axis):
    comp, rng = synthetic(seed)
    q = rng.integers(0, 6, comp.n_samples).astype(float)
    q[rng.random(comp.n_samples) < 0.1] = np.nan
    n_id = len(np.unique(comp.identities))
    w_id = np.bincount(rng.integers(0, n_id, n_id), minlength=n_id)
    codes = np.unique(comp.identities, return_inverse=True)[1].ravel()
    d = check_discard_fractions(np.arange(0, 96, 5) / 100)
    fmrs = (0.01, 0.05)
    got = _evaluate(_prepare(comp, q, axis, "min"), fmrs, ("recomputed", "fixed"), d, 2, w_id[codes].astype(float))
    mat, mq = materialise(comp, q, w_id)
    want = evrc(mat, mq, fmrs=fmrs, axis=axis, discard_fractions=d, min_false_matches=2)
    for a, b in zip(got.curves, want.curves):
        for key in ("discard_achieved", "fnmr", "fmr", "threshold", "n_genuine", "n_impostor", "n_images", "insufficient"):
            np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=1e-12, atol=0, err_msg=f"{key} {a.label}")
        assert (a.n_genuine_total, a.n_impostor_total, a.n_images_total) == (b.n_genuine_total, b.n_impostor_total, b.n_images_total)
        assert a.n_nan_genuine == b.n_nan_genuine and a.n_nan_impostor == b.n_nan_impostor


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate():
    comp, rng = synthetic(0, n_ids=60)
    q = rng.random(comp.n_samples)
    kw = dict(statistic="aoc", fmr=0.01, policy="fixed", axis="comparisons", n_boot=40, seed=7)
    a = bootstrap_ci(comp, q, **kw)
    b = bootstrap_ci(comp, q, **kw)
    np.testing.assert_array_equal(a.replicates, b.replicates)
    assert a.estimate == aoc(evrc(comp, q, fmrs=0.01, policies="fixed", axis="comparisons").curves[0])
    assert a.low <= a.high and a.n_boot == 40 and len(a.replicates) == 40
    assert a.n_undefined == int(np.isnan(a.replicates).sum())
    assert a.resampling == "identities" and a.settings["policy"] == "fixed"
    assert not np.all(a.replicates[~np.isnan(a.replicates)] == a.estimate)  # replicates vary
    c = bootstrap_ci(comp, q, **{**kw, "seed": 8})
    assert not np.array_equal(a.replicates, c.replicates)
    p = bootstrap_ci(comp, q, statistic="pauc", fmr=0.01, policy="fixed", axis="comparisons", n_boot=10, seed=1)
    assert p.estimate == edc_pauc(evrc(comp, q, fmrs=0.01, policies="fixed", axis="comparisons").curves[0], 0.2)
    json.dumps(a.to_dict(), allow_nan=False)
    assert "identities" in a.to_markdown()


def test_paired_difference_says_whether_methods_differ():
    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(120), 2)
    comp = all_vs_all(rng.normal(size=(120, 8))[ids] + 0.9 * rng.normal(size=(240, 8)), ids)
    gp = comp.genuine_pairs.astype(np.int64)
    perfect = np.empty(comp.n_samples)
    perfect[gp[:, 0]] = perfect[gp[:, 1]] = comp.genuine_scores
    random = rng.random(comp.n_samples)
    kw = dict(fmr=0.01, policy="fixed", axis="comparisons", n_boot=30, seed=0)
    same = bootstrap_difference(comp, random, random, **kw)
    assert same.estimate == 0 and same.low == 0 and same.high == 0 and not same.excludes_zero
    diff = bootstrap_difference(comp, perfect, random, **kw)
    assert diff.excludes_zero and diff.low > 0.3
    assert diff.statistic == "aoc difference"
    # where the statistic is undefined (here: too few impostors left for the recomputed threshold
    # at 95 % discard), replicates are counted, not silently used
    undefined = bootstrap_difference(comp, perfect, random, **{**kw, "policy": "recomputed", "n_boot": 3})
    assert np.isnan(undefined.estimate) and undefined.n_undefined == 3
    assert "| undefined | undefined | 3 (3) |" in undefined.to_markdown()


def test_bad_input():
    comp, rng = synthetic(1)
    q = rng.random(comp.n_samples)
    no_ids = comparisons_from_scores(comp.genuine_scores, comp.genuine_pairs, comp.impostor_scores, comp.impostor_pairs,
                                     n_samples=comp.n_samples)
    with pytest.raises(ValueError, match="identities"):
        bootstrap_ci(no_ids, q, n_boot=2)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(comp, q, n_boot=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(comp, q, n_boot=2, confidence=1.0)
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_ci(comp, q, n_boot=2, statistic="auc")
    with pytest.raises(ValueError, match="open interval"):
        bootstrap_ci(comp, q, n_boot=2, fmr=1.0)
    with pytest.raises(TypeError, match="unexpected"):
        bootstrap_difference(comp, q, q, n_bootstrap=2)


def test_replicates_of_many_measures_and_curves_equal_one_at_a_time():
    """bootstrap_replicates evaluates all quality sets, policies and FMRs on the same replicates: each
    slice equals bootstrap_ci with the same seed, and each pair's difference equals bootstrap_difference."""
    from fiqa_bench.metrics import bootstrap_replicates

    comp, rng = synthetic(11, n_ids=30)
    qualities = [rng.random(comp.n_samples), rng.integers(0, 4, comp.n_samples).astype(float),
                 rng.random(comp.n_samples)]
    fmrs, policies = (0.05, 0.2), ("recomputed", "fixed")
    together = bootstrap_replicates(comp, qualities, fmrs=fmrs, policies=policies, n_boot=15, seed=4,
                                    min_false_matches=1)
    assert together.replicates.shape == (15, 3, 2, 2)
    for policy in policies:
        for fmr in fmrs:
            for m, q in enumerate(qualities):
                alone = bootstrap_ci(comp, q, fmr=fmr, policy=policy, n_boot=15, seed=4, min_false_matches=1)
                np.testing.assert_array_equal(together.interval(m, policy, fmr).replicates, alone.replicates)
                assert together.interval(m, policy, fmr).estimate == alone.estimate or np.isnan(alone.estimate)
            pair = bootstrap_difference(comp, qualities[0], qualities[2], fmr=fmr, policy=policy, n_boot=15, seed=4,
                                        min_false_matches=1)
            np.testing.assert_array_equal(together.difference(0, 2, policy, fmr).replicates, pair.replicates)
    with pytest.raises(ValueError, match="no replicates for"):
        together.interval(0, "fixed", 0.01)


def test_replicates_computed_in_pieces_equal_one_run():
    from fiqa_bench.metrics import BootstrapReplicates, bootstrap_replicates

    comp, rng = synthetic(12, n_ids=30)
    qualities = [rng.random(comp.n_samples), rng.random(comp.n_samples)]
    options = dict(fmrs=(0.05, 0.2), policies=("recomputed", "fixed"), seed=9, min_false_matches=1)
    whole = bootstrap_replicates(comp, qualities, n_boot=13, **options)
    pieces = [bootstrap_replicates(comp, qualities, n_boot=n, start=s, **options) for s, n in ((0, 5), (5, 5), (10, 3))]
    joined = BootstrapReplicates.concatenate(pieces)
    np.testing.assert_array_equal(joined.replicates, whole.replicates)
    np.testing.assert_array_equal(joined.estimates, whole.estimates)
    other = bootstrap_replicates(comp, qualities, n_boot=2, **{**options, "seed": 10})
    with pytest.raises(ValueError, match="different runs"):
        BootstrapReplicates.concatenate([pieces[0], other])
    with pytest.raises(ValueError, match="start"):
        bootstrap_replicates(comp, qualities, n_boot=2, start=-1, **options)


def test_given_estimates_are_used_and_checked():
    from fiqa_bench.metrics import bootstrap_replicates

    comp, rng = synthetic(13, n_ids=20)
    qualities = [rng.random(comp.n_samples)]
    options = dict(fmrs=(0.1,), policies=("fixed",), n_boot=4, seed=2, min_false_matches=1)
    computed = bootstrap_replicates(comp, qualities, **options)
    given = bootstrap_replicates(comp, qualities, estimates=computed.estimates, **options)
    np.testing.assert_array_equal(given.replicates, computed.replicates)
    np.testing.assert_array_equal(given.estimates, computed.estimates)
    with pytest.raises(ValueError, match="estimates must have shape"):
        bootstrap_replicates(comp, qualities, estimates=np.zeros((2, 1, 1)), **options)
