"""EVRC / EDC (both policies, both discard axes) against a brute-force implementation, and properties."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiqa_bench.metrics import all_vs_all, comparisons_from_scores, evrc
from fiqa_bench.metrics import discard as discard_module

# --------------------------------------------------------------------------- brute force


def brute_allowed(f: float, m: int) -> int:
    k = 0
    while (k + 1) / m <= f:
        k += 1
    return k


def brute_rule(impostor: np.ndarray, f: float, mfm: int):
    """The rule 'accept s > v' with the smallest data value v keeping FMR <= f; None if insufficient."""
    if len(impostor) == 0 or brute_allowed(f, len(impostor)) < mfm:
        return None
    for v in sorted(set(impostor.tolist())):
        if np.sum(impostor > v) / len(impostor) <= f:
            return v
    raise AssertionError


def brute_evrc(gs, gp, is_, ip, q, f, policy, axis, d, mfm, combine=np.minimum):
    """The obvious implementation: filter, then threshold, at every discard point."""
    key = np.where(np.isnan(q), -1e300, q)  # NaN lowest (test qualities are finite otherwise)
    gk, ik = combine(key[gp[:, 0]], key[gp[:, 1]]), combine(key[ip[:, 0]], key[ip[:, 1]])
    basis = key if axis == "images" else gk
    levels = sorted(set(basis.tolist()))
    fixed = brute_rule(is_, f, mfm)
    rows = []
    for phi in d:
        cut, achieved = -np.inf, 0.0
        for i, lv in enumerate(levels):  # largest set of whole tie groups with fraction <= phi
            if np.sum(basis <= lv) / len(basis) <= phi:
                cut = levels[i + 1] if i + 1 < len(levels) else np.inf
                achieved = np.sum(basis <= lv) / len(basis)
        g_rem, i_rem = gs[gk >= cut], is_[ik >= cut]
        v = fixed if policy == "fixed" else brute_rule(i_rem, f, mfm)
        row = dict(achieved=achieved, n_gen=len(g_rem), n_imp=len(i_rem), insufficient=v is None, fnmr=np.nan, fmr=np.nan)
        if v is not None:
            row["fnmr"] = np.mean(g_rem <= v) if len(g_rem) else np.nan
            row["fmr"] = np.mean(i_rem > v) if len(i_rem) else np.nan
            row["v"] = v
        rows.append(row)
    return rows


def assert_matches_brute(curve, comp, q, d, combine=np.minimum):
    gp, ip = comp.genuine_pairs.astype(np.int64), comp.impostor_pairs.astype(np.int64)
    rows = brute_evrc(comp.genuine_scores, gp, comp.impostor_scores, ip, q, curve.fmr_target,
                      curve.policy, curve.axis, d, curve.min_false_matches, combine)
    for j, row in enumerate(rows):
        where = f"point {j} (discard {d[j]}) of {curve.label}"
        assert curve.discard_achieved[j] == row["achieved"], where
        assert (curve.n_genuine[j], curve.n_impostor[j]) == (row["n_gen"], row["n_imp"]), where
        assert curve.insufficient[j] == row["insufficient"], where
        np.testing.assert_equal(curve.fnmr[j], row["fnmr"], err_msg=where)
        np.testing.assert_equal(curve.fmr[j], row["fmr"], err_msg=where)
        if "v" in row:
            scores = np.r_[comp.genuine_scores, comp.impostor_scores]
            assert np.array_equal(scores >= curve.threshold[j], scores > row["v"]), where


def tied_comparisons(seed: int, n: int = 16, dim: int = 3):
    rng = np.random.default_rng(seed)
    e = rng.integers(-1, 2, (n, dim)).astype(float)
    e[np.all(e == 0, axis=1), 0] = 1.0
    ids = rng.integers(0, max(2, n // 3), n)
    return all_vs_all(e, ids, dtype=np.float64), rng


def tied_qualities(rng, n: int, levels: int = 4, nan_rate: float = 0.15) -> np.ndarray:
    q = rng.integers(0, levels, n).astype(float)
    q[rng.random(n) < nan_rate] = np.nan
    return q


D_SMALL = np.array([0.0, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 0.9, 0.95, 1.0])


# --------------------------------------------------------------------------- exactness


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(4, 24),
    levels=st.integers(1, 6),
    f=st.sampled_from([0.02, 0.05, 0.1, 0.25, 0.5]),
    mfm=st.sampled_from([0, 1, 3]),
    axis=st.sampled_from(["images", "comparisons"]),
)
def test_matches_brute_force_on_tied_inputs(seed, n, levels, f, mfm, axis):
    comp, rng = tied_comparisons(seed, n)
    if comp.n_genuine == 0 or comp.n_impostor == 0:
        with pytest.raises(ValueError, match="comparison set is empty"):
            evrc(comp, np.zeros(n), fmrs=f)
        return
    q = tied_qualities(rng, n, levels)
    r = evrc(comp, q, fmrs=f, axis=axis, discard_fractions=D_SMALL, min_false_matches=mfm)
    for curve in r.curves:
        assert_matches_brute(curve, comp, q, D_SMALL)


@pytest.mark.parametrize("seed", range(3))
def test_matches_brute_force_many_points_several_fmrs(seed):
    comp, rng = tied_comparisons(seed, n=40, dim=4)
    q = tied_qualities(rng, 40, levels=12)
    d = np.arange(96) / 100
    r = evrc(comp, q, fmrs=(0.01, 0.05, 0.2), min_false_matches=2, discard_fractions=d)
    assert len(r.curves) == 6
    for curve in r.curves:
        assert_matches_brute(curve, comp, q, d)


def test_custom_pair_quality_on_comparisons_axis():
    comp, rng = tied_comparisons(7, n=30)
    q = rng.integers(1, 5, 30).astype(float)
    q[3] = np.nan
    r = evrc(comp, q, fmrs=0.1, axis="comparisons", pair_quality=np.multiply, discard_fractions=D_SMALL, min_false_matches=1)
    for curve in r.curves:
        assert curve.pair_quality == "multiply"
        assert_matches_brute(curve, comp, q, D_SMALL, combine=np.multiply)
    # the generic path with np.minimum equals the integer-rank fast path of "min"
    fast = evrc(comp, q, fmrs=0.1, axis="comparisons", discard_fractions=D_SMALL, min_false_matches=1)
    slow = evrc(comp, q, fmrs=0.1, axis="comparisons", pair_quality=np.minimum, discard_fractions=D_SMALL, min_false_matches=1)
    for a, b in zip(fast.curves, slow.curves):
        for key in ("fnmr", "fmr", "threshold", "n_genuine", "n_impostor", "discard_achieved"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_pool_growth_with_adversarial_quality(monkeypatch):
    """Low-quality samples hold the highest impostor scores, so discarding empties the top of the
    impostor ranking: the threshold pool must grow; results stay exact."""
    monkeypatch.setattr(discard_module, "_POOL_PAD", 0)
    built = []
    original = discard_module._Pool.__init__

    def counting(self, *args, **kwargs):
        built.append(args[-1])
        original(self, *args, **kwargs)

    monkeypatch.setattr(discard_module._Pool, "__init__", counting)
    rng = np.random.default_rng(5)
    ids = np.repeat(np.arange(30), 3)
    bad = ids < 15  # half of the identities share a common direction: all top impostor scores are bad-bad
    e = rng.normal(size=(90, 6)) + 4.0 * bad[:, None] * np.ones(6)
    comp = all_vs_all(e, ids, dtype=np.float64)
    q = np.where(bad, rng.integers(0, 3, 90), 10 + rng.random(90))
    d = np.array([0.0, 0.1, 0.3, 0.5, 0.6, 0.8])
    r = evrc(comp, q, fmrs=(0.01, 0.05), discard_fractions=d, min_false_matches=3)
    assert len(built) > 1 and built[-1] > built[0]
    for curve in r.curves:
        assert_matches_brute(curve, comp, q, d)


@pytest.mark.parametrize("seed", range(40))
def test_complete_sets_count_impostors_from_the_samples_exactly(seed):
    """On a complete all-vs-all set the per-rank impostor counts come from the samples (closed form);
    they equal a pass over every impostor pair, with and without bootstrap weights, NaN ranks included."""
    from dataclasses import replace

    from fiqa_bench.metrics.comparisons import ImpostorSampling

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    comp = all_vs_all(rng.normal(size=(n, 4)), rng.integers(0, rng.integers(1, 10), n))
    if comp.n_genuine == 0 or comp.n_impostor == 0:
        return
    q = rng.integers(0, 5, n).astype(float)
    q[rng.random(n) < 0.1] = np.nan
    as_given = replace(comp, sampling=ImpostorSampling("given", comp.n_impostor, comp.n_impostor))
    for weights in (None, rng.integers(0, 4, n).astype(float)):
        fast = discard_module._impostor_rank_counts(discard_module._prepare(comp, q, "images", "min"), weights)
        assert discard_module._complete_impostor_rank_counts(
            discard_module._prepare(as_given, q, "images", "min"), weights) is None
        slow = discard_module._impostor_rank_counts(discard_module._prepare(as_given, q, "images", "min"), weights)
        np.testing.assert_array_equal(fast[0], slow[0])
        assert fast[1] == slow[1]


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    transform=st.sampled_from(["exp", "affine", "arctan", "rank", "cube"]),
    axis=st.sampled_from(["images", "comparisons"]),
)
def test_strictly_increasing_transform_changes_nothing(seed, transform, axis):
    comp, rng = tied_comparisons(seed, n=20)
    if comp.n_genuine == 0 or comp.n_impostor == 0:
        return
    q = tied_qualities(rng, 20, levels=5) - 2.0
    t = {
        "exp": np.exp,
        "affine": lambda x: 3 * x - 7,
        "arctan": np.arctan,
        "cube": lambda x: x**3,
        "rank": lambda x: np.where(np.isnan(x), np.nan, np.searchsorted(np.unique(x[~np.isnan(x)]), x)),
    }[transform](q)
    a = evrc(comp, q, fmrs=(0.05, 0.2), axis=axis, discard_fractions=D_SMALL, min_false_matches=1)
    b = evrc(comp, t, fmrs=(0.05, 0.2), axis=axis, discard_fractions=D_SMALL, min_false_matches=1)
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), axis=st.sampled_from(["images", "comparisons"]))
def test_invariant_to_input_order(seed, axis):
    comp, rng = tied_comparisons(seed, n=18)
    if comp.n_genuine == 0 or comp.n_impostor == 0:
        return
    q = tied_qualities(rng, 18, levels=4)
    perm = rng.permutation(18)  # new index of old sample i is perm[i]
    gp = perm[comp.genuine_pairs.astype(np.int64)][:, ::-1]
    ip = perm[comp.impostor_pairs.astype(np.int64)]
    go, io = rng.permutation(comp.n_genuine), rng.permutation(comp.n_impostor)
    q2 = np.empty_like(q)
    q2[perm] = q
    ids2 = np.empty(18, dtype=comp.identities.dtype)
    ids2[perm] = comp.identities
    shuffled = comparisons_from_scores(comp.genuine_scores[go], gp[go], comp.impostor_scores[io], ip[io], identities=ids2)
    a = evrc(comp, q, fmrs=(0.05, 0.3), axis=axis, discard_fractions=D_SMALL, min_false_matches=1)
    b = evrc(shuffled, q2, fmrs=(0.05, 0.3), axis=axis, discard_fractions=D_SMALL, min_false_matches=1)
    for ca, cb in zip(a.curves, b.curves):
        da, db = ca.to_dict(), cb.to_dict()
        assert da.pop("impostor_sampling")["method"] == "all" and db.pop("impostor_sampling")["method"] == "given"
        assert json.dumps(da) == json.dumps(db)


def synthetic(seed: int, n_ids: int = 60, per_id: int = 3, dim: int = 8, noise: float = 1.2):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    ids = np.repeat(np.arange(n_ids), per_id)
    e = centres[ids] + noise * rng.normal(size=(len(ids), dim))
    return all_vs_all(e, ids, dtype=np.float64), rng


@pytest.mark.parametrize("axis", ["images", "comparisons"])
@pytest.mark.parametrize("policy", ["fixed", "recomputed"])
def test_random_quality_leaves_fnmr_flat_in_expectation(axis, policy):
    comp, rng = synthetic(0)
    d = np.array([0.0, 0.2, 0.4, 0.6])
    runs = np.array([
        evrc(comp, rng.random(comp.n_samples), fmrs=0.01, policies=policy, axis=axis, discard_fractions=d).curves[0].fnmr
        for _ in range(150)
    ])
    base = runs[0, 0]
    assert np.all(runs[:, 0] == base)  # nothing discarded at 0
    mean, se = runs.mean(axis=0), runs.std(axis=0, ddof=1) / np.sqrt(len(runs))
    assert base > 0.2  # a hard setting, so a slope would show
    assert np.all(np.abs(mean[1:] - base) < 4 * se[1:] + 0.01), (mean, se, base)


def perfect_setting(seed: int):
    """Two samples per identity: each genuine comparison is one identity, so a per-sample quality
    can equal the genuine score of its pair (pair quality = that score)."""
    comp, rng = synthetic(seed, n_ids=80, per_id=2, noise=0.9)
    perfect = np.empty(comp.n_samples)
    gp = comp.genuine_pairs.astype(np.int64)
    perfect[gp[:, 0]] = comp.genuine_scores
    perfect[gp[:, 1]] = comp.genuine_scores
    return comp, rng, perfect


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), axis=st.sampled_from(["images", "comparisons"]))
def test_perfect_quality_drives_fnmr_to_zero_fastest(seed, axis):
    comp, rng, perfect = perfect_setting(seed % 7)
    d = np.arange(0, 96, 5) / 100
    kw = dict(fmrs=0.01, policies="fixed", axis=axis, discard_fractions=d)
    best = evrc(comp, perfect, **kw).curves[0]
    e0 = best.fnmr[0]
    assert 0.1 < e0 < 0.9
    # the theoretical best: only false non-matches are discarded, FNMR = max(0, E - D) / (G - D)
    G, E = comp.n_genuine, round(e0 * comp.n_genuine)
    D = G - best.n_genuine
    np.testing.assert_allclose(best.fnmr, np.maximum(0, E - D) / (G - D), rtol=0, atol=1e-15)
    if axis == "comparisons":
        assert np.all(best.fnmr[d >= e0 + 1 / G] == 0)
        # no other quality does better at any discard fraction
        for other in (rng.random(comp.n_samples), -perfect, perfect + rng.normal(0, 0.2, comp.n_samples)):
            curve = evrc(comp, other, **kw).curves[0]
            assert np.all(best.fnmr <= curve.fnmr + 1e-15)
    else:
        # discarding 2 images removes one genuine pair here: FNMR is 0 once 2 * E images are gone
        assert np.all(best.fnmr[d >= 2 * E / comp.n_samples + 1e-9] == 0)


def test_fixed_and_recomputed_agree_at_zero_discard():
    comp, rng = synthetic(3)
    r = evrc(comp, rng.random(comp.n_samples), fmrs=(0.01, 0.1))
    for f in (0.01, 0.1):
        a, b = r.get("fixed", f), r.get("recomputed", f)
        assert a.threshold[0] == b.threshold[0] and a.fnmr[0] == b.fnmr[0] and a.fmr[0] == b.fmr[0]
        assert np.all(a.threshold == a.threshold[0])  # fixed: one threshold
        assert np.all(b.fmr[~b.insufficient] <= f)  # recomputed: FMR at or below target everywhere


# --------------------------------------------------------------------------- flags, NaN, bad input


def test_insufficient_points_flagged_per_point():
    comp, rng = synthetic(1, n_ids=40, per_id=3)  # 7,020 - 120 impostor comparisons
    q = rng.random(comp.n_samples)
    r = evrc(comp, q, fmrs=(1e-2, 1e-3))
    rec, fix = r.get("recomputed", 1e-2), r.get("recomputed", 1e-3)
    assert not rec.insufficient[0] and rec.insufficient[-1]  # enough at first, too few after discarding
    first_bad = int(np.argmax(rec.insufficient))
    assert np.all(rec.insufficient[first_bad:])
    assert np.all(rec.n_impostor[rec.insufficient] * 1e-2 < 10) and np.all(rec.n_impostor[~rec.insufficient] * 1e-2 >= 10)
    assert np.all(np.isnan(rec.fnmr[rec.insufficient])) and np.all(np.isnan(rec.threshold[rec.insufficient]))
    assert fix.insufficient.all() and np.isnan(fix.fnmr).all()  # 6,900 < 10,000 impostors for 1e-3
    assert r.get("fixed", 1e-3).insufficient.all()
    assert not r.get("fixed", 1e-2).insufficient.any()
    assert "insufficient comparisons" in fix.to_markdown()
    json.dumps(r.to_dict(), allow_nan=False)


def test_nan_qualities_discarded_first_and_counted():
    comp, rng = synthetic(2, n_ids=20, per_id=3)
    q = rng.random(comp.n_samples)
    nan_idx = np.array([0, 7, 8, 30])
    q[nan_idx] = np.nan
    d = np.array([0.0, 3.99 / 60, 4 / 60, 0.5])
    curve = evrc(comp, q, fmrs=0.05, policies="fixed", discard_fractions=d).curves[0]
    involved = lambda p: np.isin(p.astype(np.int64), nan_idx).any(axis=1)  # noqa: E731
    assert curve.n_nan_images == 4
    assert curve.n_nan_genuine == involved(comp.genuine_pairs).sum()
    assert curve.n_nan_impostor == involved(comp.impostor_pairs).sum()
    assert curve.n_genuine[0] == comp.n_genuine  # included at zero discard
    assert curve.n_images[1] == 60  # 3.99 images' worth: the NaN group (4) cannot be split
    assert curve.n_images[2] == 56 and curve.discard_achieved[2] == 4 / 60  # ... and goes first
    assert curve.n_genuine[2] == comp.n_genuine - curve.n_nan_genuine
    assert curve.n_impostor[2] == comp.n_impostor - curve.n_nan_impostor
    # NaN ranks below -inf too
    q2 = q.copy()
    q2[1] = -np.inf
    assert evrc(comp, q2, fmrs=0.05, policies="fixed", discard_fractions=d).curves[0].n_images[2] == 56


def test_bad_input_gives_clear_errors():
    comp, rng = synthetic(0, n_ids=10)
    q = rng.random(comp.n_samples)
    with pytest.raises(ValueError, match="29 values but the comparisons have 30"):
        evrc(comp, q[:-1])
    with pytest.raises(ValueError, match="1-D"):
        evrc(comp, q[:, None])
    for f in (0.0, 1.0, -1e-3, 2, np.nan):
        with pytest.raises(ValueError, match="open interval|number"):
            evrc(comp, q, fmrs=f)
    with pytest.raises(ValueError, match="empty"):
        evrc(comp, q, fmrs=[])
    with pytest.raises(ValueError, match="must not repeat"):
        evrc(comp, q, fmrs=[0.1, 0.1])
    with pytest.raises(ValueError, match="policy must be one of"):
        evrc(comp, q, policies="recompute")
    with pytest.raises(ValueError, match="axis must be one of"):
        evrc(comp, q, axis="image")
    with pytest.raises(ValueError, match="strictly increasing"):
        evrc(comp, q, discard_fractions=[0.0, 0.2, 0.1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evrc(comp, q, discard_fractions=[0.0, 1.5])
    with pytest.raises(ValueError, match="needs axis='comparisons'"):
        evrc(comp, q, pair_quality=np.multiply)
    with pytest.raises(ValueError, match="shape"):
        evrc(comp, q, axis="comparisons", pair_quality=lambda a, b: a[:1])
    with pytest.raises(ValueError, match="pair_quality must be one of"):
        evrc(comp, q, pair_quality="mean")
    with pytest.raises(TypeError, match="Comparisons"):
        evrc({"scores": []}, q)
    singles = all_vs_all(rng.normal(size=(5, 3)), np.arange(5))
    with pytest.raises(ValueError, match="genuine comparison set is empty"):
        evrc(singles, np.ones(5))
    with pytest.raises(ValueError, match="no curve for policy"):
        evrc(comp, q, fmrs=0.1).get("fixed", 0.2)


def test_result_records_everything():
    comp, rng = synthetic(4)
    r = evrc(comp, rng.random(comp.n_samples), fmrs=1e-2)
    c = r.get("recomputed", 1e-2)
    assert (c.policy, c.axis, c.fmr_target, c.pair_quality) == ("recomputed", "images", 0.01, "min")
    assert (c.n_genuine_total, c.n_impostor_total, c.n_images_total) == (comp.n_genuine, comp.n_impostor, comp.n_samples)
    assert c.impostor_sampling == comp.sampling.to_dict()
    assert len(c.fnmr) == 96 and c.discard_requested[-1] == 0.95
    assert np.all(c.discard_achieved <= c.discard_requested)
    d = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert d["policy"] == "recomputed" and len(d["fnmr"]) == 96
    md = c.to_markdown()
    assert "recomputed threshold, images axis, FMR=0.01" in md and "| 0.95 |" in md
    table = r.to_markdown()
    assert table.count("\n") == 3 and "AOC (relative)" in table
