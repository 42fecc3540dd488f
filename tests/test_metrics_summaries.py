"""AOC (paper-compatible and literal Eq. 13) and EDC pAUC."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fiqa_bench.metrics import aoc, all_vs_all, edc_pauc, edc_steps, edc_theoretical_best_area, evrc, fnmr_area

D = np.arange(96) / 100


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(80), 2)
    centres = rng.normal(size=(80, 8))
    comp = all_vs_all(centres[ids] + 0.6 * rng.normal(size=(160, 8)), ids, dtype=np.float64)
    return comp, rng


def shaped(setting, fnmr, d=D, insufficient=None):
    comp, rng = setting
    base = evrc(comp, rng.random(comp.n_samples), fmrs=0.01, policies="fixed", discard_fractions=d).curves[0]
    ins = np.zeros(len(d), bool) if insufficient is None else insufficient
    return dataclasses.replace(base, fnmr=np.asarray(fnmr, float), insufficient=ins)


def test_aoc_normalisation_on_exact_shapes(setting):
    e0 = 0.2
    flat = shaped(setting, np.full(96, e0))
    assert aoc(flat) == pytest.approx(0.0, abs=1e-15)  # random quality: 0
    assert aoc(flat, normalised=False) == pytest.approx(1 - 0.95 * e0)  # literal Eq. 13: near 1 for everyone
    assert fnmr_area(flat) == pytest.approx(0.95 * e0)
    falling = shaped(setting, e0 * (1 - D / 0.95))  # linear to 0 at 0.95: trapezoid rule is exact
    assert aoc(falling) == pytest.approx(0.5)
    assert aoc(falling, normalised=False) == pytest.approx(1 - e0 * 0.95 / 2)
    rising = shaped(setting, e0 * (1 + D))  # discarding makes it worse: negative, like BLIINDS-II's -0.0065
    assert aoc(rising) == pytest.approx(-0.475)
    instant = shaped(setting, np.r_[e0, np.zeros(95)])  # perfect: ~1
    assert aoc(instant) == pytest.approx(1 - 0.01 / 2 / 0.95)


def test_aoc_paper_range_on_real_curves(setting):
    """A random quality scores about 0, a perfect one close to 1 (the paper's 0.03 ... 0.83 range)."""
    comp, rng = setting
    gp = comp.genuine_pairs.astype(np.int64)
    perfect = np.empty(comp.n_samples)
    perfect[gp[:, 0]] = perfect[gp[:, 1]] = comp.genuine_scores
    # (comparisons axis: with 2 images per identity, 92 % of the images discarded leaves no genuine pair,
    # and the AOC would then be refused as undefined)
    kw = dict(fmrs=0.01, policies="fixed", axis="comparisons")
    random_aoc = [aoc(evrc(comp, rng.random(comp.n_samples), **kw).curves[0]) for _ in range(20)]
    assert abs(np.mean(random_aoc)) < 0.1
    perfect_curve = evrc(comp, perfect, **kw).curves[0]
    assert aoc(perfect_curve) > 0.6 > max(random_aoc)


def test_aoc_refuses_undefined_values(setting):
    ins = np.zeros(96, bool)
    ins[50:] = True
    with pytest.raises(ValueError, match=r"discard fraction 0.5 \(insufficient impostor"):
        aoc(shaped(setting, np.full(96, 0.1), insufficient=ins))
    with pytest.raises(ValueError, match="FNMR at discard fraction 0 is 0"):
        aoc(shaped(setting, np.zeros(96)))
    assert aoc(shaped(setting, np.zeros(96)), normalised=False) == 1.0
    nan_tail = np.full(96, 0.1)
    nan_tail[-1] = np.nan
    with pytest.raises(ValueError, match="no genuine comparisons remain"):
        aoc(shaped(setting, nan_tail))
    short = np.arange(0, 51) / 100
    with pytest.raises(ValueError, match="no point at discard fraction 0.95"):
        aoc(shaped(setting, np.full(51, 0.1), d=short))
    assert aoc(shaped(setting, np.full(51, 0.1), d=short), upper=0.5) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="lower < upper"):
        aoc(shaped(setting, np.full(96, 0.1)), lower=0.5, upper=0.2)


def test_pauc_step_rule_and_theoretical_best(setting):
    flat = shaped(setting, np.full(96, 0.3))
    assert edc_pauc(flat) == pytest.approx(0.3 * 0.2)
    assert edc_theoretical_best_area(0.3, 0.2) == pytest.approx(0.3**2 / 2 - 0.1**2 / 2)
    assert edc_theoretical_best_area(0.1, 0.2) == pytest.approx(0.005)
    assert edc_pauc(flat, subtract_best=True) == pytest.approx(0.06 - 0.04)
    step = shaped(setting, np.where(D < 0.1, 0.3, 0.1))
    assert edc_pauc(step, 0.2) == pytest.approx(0.1 * 0.3 + 0.1 * 0.1)
    assert edc_pauc(step, 0.0) == 0.0
    # exact step curve: groups of sizes 1, 1, 2 -> points at 0, 1/4, 1/2
    s = edc_steps(np.array([0.1, 0.9, 0.2, 0.8]), np.array([1, 3, 2, 3.0]), 0.5)
    assert "| 0.2500 | 0.3333 | 1 | 1 |" in s.to_markdown()
    np.testing.assert_array_equal(s.at([0.0, 0.1, 0.25, 0.6]), [0.5, 0.5, 1 / 3, 0.0])
    assert edc_pauc(s, 0.2) == pytest.approx(0.5 * 0.2)
    assert edc_pauc(s, 0.4) == pytest.approx(0.5 * 0.25 + (1 / 3) * 0.15)
    assert edc_pauc(s, 1.0) == pytest.approx(0.5 * 0.25 + (1 / 3) * 0.25 + 0.0)
    with pytest.raises(ValueError, match=r"limit must be in \[0, 1\]"):
        edc_pauc(s, 1.5)
    with pytest.raises(ValueError, match="must include"):
        edc_pauc(shaped(setting, np.full(11, 0.1), d=np.arange(11) / 100), 0.2)
    with pytest.raises(TypeError):
        edc_pauc({"fnmr": [0.1]})
