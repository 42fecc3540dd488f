"""Controlled-degradation metrics (issue 21) on small hand-made arrays whose answers are known, and the heatmap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fiqa_bench.metrics.degradation import monotonicity, recognition_cost, utility
from fiqa_bench.report.heatmap import cell_labels, plot_heatmap

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def study(n_probes: int) -> tuple[np.ndarray, np.ndarray]:
    """Severity 0..5 for each probe, probe ids 0..n-1: ``(6 n,)`` each."""
    return np.tile(np.arange(6), n_probes), np.repeat(np.arange(n_probes), 6)


# ---- monotonicity ---------------------------------------------------------------------------------------------


def test_quality_that_falls_exactly_with_severity_is_perfectly_monotone():
    severity, probe = study(4)
    quality = 1.0 - 0.1 * severity  # the same for every probe: ties across probes do not break the ranking
    r = monotonicity(severity, quality, probe)
    assert r.spearman == pytest.approx(-1.0, abs=1e-12)  # rank arithmetic in float64
    assert r.clean_higher == 1.0
    assert (r.n, r.n_nan, r.n_pairs, r.n_pairs_nan, r.n_unpaired) == (24, 0, 20, 0, 0)


def test_quality_that_rises_with_severity_scores_zero():
    severity, probe = study(3)
    r = monotonicity(severity, severity * 2.0 + probe, probe)
    assert r.clean_higher == 0.0
    assert r.spearman > 0.8


def test_random_quality_is_blind_to_severity():
    severity, probe = study(2000)
    quality = np.random.default_rng(20250221).normal(size=len(severity))
    r = monotonicity(severity, quality, probe)
    # 12,000 copies: sd of rho under independence ~ 1/sqrt(12000) ~ 0.009, so 0.05 is > 5 sd
    assert abs(r.spearman) < 0.05
    # 10,000 pairs (dependent within a probe: sd below ~ 0.01): 0.03 is > 3 sd
    assert r.clean_higher == pytest.approx(0.5, abs=0.03)
    assert r.n_pairs == 10000


def test_ties_count_half():
    severity = np.array([0, 1, 2, 3])
    probe = np.zeros(4, int)
    r = monotonicity(severity, np.array([0.5, 0.5, 0.2, 0.9]), probe)  # tie, higher, lower
    assert r.clean_higher == pytest.approx(1.5 / 3)
    constant = monotonicity(severity, np.full(4, 0.3), probe)
    assert constant.clean_higher == 0.5
    assert np.isnan(constant.spearman)  # undefined for a constant variable, not 0 and no warning


def test_nan_qualities_are_dropped_and_counted():
    severity = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    probe = np.array(["a", "a", "a", "b", "b", "b", "c", "c"])
    quality = np.array([0.9, 0.5, np.nan, np.nan, 0.4, 0.3, 0.8, 0.7])
    r = monotonicity(severity, quality, probe)
    assert (r.n, r.n_nan) == (6, 2)
    # pairs: a1 (0.9 > 0.5), a2 (NaN), b1 and b2 (clean NaN), c1 (0.8 > 0.7)
    assert (r.n_pairs, r.n_pairs_nan, r.clean_higher) == (2, 3, 1.0)
    kept = ~np.isnan(quality)
    assert r.spearman == pytest.approx(monotonicity(severity[kept], quality[kept], probe[kept]).spearman)


def test_copies_without_a_clean_copy_are_counted_not_paired():
    severity = np.array([0, 1, 1, 2])
    probe = np.array([1, 1, 2, 2])
    r = monotonicity(severity, np.array([0.9, 0.1, 0.5, 0.4]), probe)
    assert (r.n_pairs, r.n_unpaired, r.clean_higher) == (1, 2, 1.0)
    assert r.to_dict()["n_unpaired"] == 2


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="2 clean copies"):
        monotonicity(np.array([0, 0, 1]), np.array([1.0, 2.0, 3.0]), np.array([5, 5, 5]))
    with pytest.raises(ValueError, match="severity must be in 0..5, got 6"):
        monotonicity(np.array([0, 6]), np.array([1.0, 2.0]), np.array([5, 5]))
    with pytest.raises(ValueError, match="integers"):
        monotonicity(np.array([0, 1.5]), np.array([1.0, 2.0]), np.array([5, 5]))
    with pytest.raises(ValueError, match=r"quality must have shape \(2,\)"):
        monotonicity(np.array([0, 1]), np.array([1.0]), np.array([5, 5]))
    with pytest.raises(ValueError, match="infinite"):
        monotonicity(np.array([0, 1]), np.array([1.0, -np.inf]), np.array([5, 5]))


# ---- utility --------------------------------------------------------------------------------------------------


def test_utility_is_one_when_quality_drop_is_a_monotone_function_of_score_drop():
    severity, probe = study(5)
    rng = np.random.default_rng(3)
    score = rng.uniform(0.2, 0.9, len(severity))
    clean_score = np.repeat(score[severity == 0], 6)
    # q(clean) - q(copy) = exp(3 ds): strictly increasing in ds, whatever each probe's clean quality
    clean_quality = np.repeat(rng.uniform(0, 100, 5), 6)
    quality = clean_quality - np.exp(3 * (clean_score - score))
    r = utility(severity, quality, score, probe)
    assert r.spearman == pytest.approx(1.0, abs=1e-12)
    assert (r.n, r.n_nan, r.n_unpaired) == (25, 0, 0)
    reversed_ = utility(severity, -quality, score, probe)
    assert reversed_.spearman == pytest.approx(-1.0, abs=1e-12)


def test_utility_drops_nan_pairs_and_counts_them():
    severity = np.array([0, 1, 2, 3, 0, 1, 2])
    probe = np.array([1, 1, 1, 1, 2, 2, 2])
    quality = np.array([1.0, 0.8, 0.5, np.nan, 2.0, 1.9, 1.0])
    score = np.array([0.9, 0.7, 0.6, 0.5, np.nan, 0.4, 0.3])
    r = utility(severity, quality, score, probe)
    # probe 1: copy 3 has no quality; probe 2: the clean copy has no score, so neither copy has a drop
    assert (r.n, r.n_nan) == (2, 3)
    assert r.spearman == pytest.approx(1.0)  # dq 0.2, 0.5 against ds 0.2, 0.3
    none_left = utility(severity[4:], quality[4:], score[4:], probe[4:])
    assert np.isnan(none_left.spearman) and none_left.n == 0
    assert none_left.to_dict()["spearman"] is None


# ---- recognition cost -----------------------------------------------------------------------------------------


def test_recognition_cost_against_a_hand_count():
    impostor = np.arange(100) / 100.0  # 0.00 .. 0.99
    # FMR 0.1 allows k = 10 false matches: s* = the 11th highest = 0.89, accept s > 0.89
    severity = np.array([0, 0, 0, 1, 1, 1, 1, 3, 3, 5])
    genuine = np.array([0.95, 0.90, 0.99, 0.89, 0.50, 0.91, np.nan, 0.10, 0.20, 0.97])
    r = recognition_cost(severity, genuine, impostor, 0.1)
    assert r.threshold.highest_rejected == 0.89 and r.threshold.n_false_matches == 10
    assert r.levels == (0, 1, 2, 3, 4, 5)
    assert r.fnmr[0] == 0.0
    assert r.fnmr[1] == pytest.approx(2 / 3)  # 0.89 (tied with s*: rejected) and 0.50; the NaN is left out
    assert (r.n_genuine[1], r.n_false_non_match[1], r.n_nan[1]) == (3, 2, 1)
    assert r.fnmr[3] == 1.0 and r.fnmr[5] == 0.0
    assert np.isnan(r.fnmr[2]) and np.isnan(r.fnmr[4]) and r.n_genuine[2] == 0
    assert r.to_dict()["fnmr"]["2"] is None


def test_recognition_cost_insufficient_threshold_gives_nan():
    impostor = np.arange(100) / 100.0
    r = recognition_cost(np.array([0, 1]), np.array([0.9, 0.1]), impostor, 0.05)  # k = 5 < 10
    assert r.threshold.insufficient
    assert all(np.isnan(v) for v in r.fnmr.values())
    assert r.n_genuine[0] == 1
    # k = 5 allowed when asked: s* = 6th highest = 0.94
    relaxed = recognition_cost(np.array([0, 1]), np.array([0.99, 0.94]), impostor, 0.05, min_false_matches=5)
    assert (relaxed.fnmr[0], relaxed.fnmr[1]) == (0.0, 1.0)


# ---- heatmap --------------------------------------------------------------------------------------------------


def grid(with_nan: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    methods = [f"method-{i}" for i in range(13)]
    factors = ["gaussian-blur", "motion-blur", "gaussian-noise", "jpeg", "resolution", "exposure-under",
               "exposure-over", "contrast", "occlusion-eyes", "occlusion-mouth", "occlusion-patch", "rotation"]
    values = pd.DataFrame(rng.uniform(-1, 1, (13, 12)), index=methods, columns=factors)
    if with_nan:
        values.iloc[2, 3] = np.nan
        values.iloc[12, :] = np.nan
    return values


def grey_pixels(path: Path) -> int:
    """Pixels of the missing-cell grey (0.75 = 191/255 on each channel)."""
    import matplotlib.image

    rgb = (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)
    return int(np.count_nonzero(np.all(np.abs(rgb - 191) <= 1, axis=-1)))


def test_heatmap_writes_a_png_and_greys_missing_cells(tmp_path: Path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    full, holes = tmp_path / "full.png", tmp_path / "holes.png"
    plot_heatmap(grid(False), full, "Spearman rho (severity, quality)")
    plot_heatmap(grid(True), holes, "with missing cells")
    for path in (full, holes):
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert plt.get_fignums() == before  # every figure closed
    # RdBu holds no neutral grey: without NaN only antialiased text edges come near it; 13 grey cells add
    # thousands of pixels each (a cell is ~100 x 50 px at 150 dpi), more than 1000 each leaves a wide margin
    assert grey_pixels(holes) - grey_pixels(full) > 13 * 1000


def test_heatmap_is_deterministic(tmp_path: Path):
    # the same figure drawn twice in one process by the same Agg renderer: byte-identical files
    plot_heatmap(grid(True), tmp_path / "a.png", "t")
    plot_heatmap(grid(True), tmp_path / "b.png", "t")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_heatmap_cell_labels_and_bad_input(tmp_path: Path):
    labels = cell_labels(grid(True), "{:+.1f}")
    assert labels[2][3] == "n/a" and labels[12] == ["n/a"] * 12
    assert labels[0][0] == f"{grid(True).iloc[0, 0]:+.1f}"
    with pytest.raises(ValueError, match="empty"):
        plot_heatmap(pd.DataFrame(), tmp_path / "x.png", "t")
    with pytest.raises(ValueError, match="vmin < vmax"):
        plot_heatmap(grid(False), tmp_path / "x.png", "t", vmin=1, vmax=1)
    assert not (tmp_path / "x.png").exists()
