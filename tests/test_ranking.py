"""The cross-dataset verdict (fiqa_bench.metrics.ranking) against hand computations, and its CD diagram.

The hand table: 4 methods x 6 blocks, higher = better, one tie (A and B on b2).  Ranks per block
(1 = best, ties averaged):

    block   A    B    C    D
    b1      1    2    3    4
    b2      1.5  1.5  3    4      (A = B = 0.85)
    b3      2    1    3    4
    b4      1    2    4    3
    b5      1    3    4    2
    b6      1    2    4    3
    sum     7.5  11.5 21   20     (= N k(k+1)/2 = 60)
    mean    1.25 1.9167 3.5 3.3333
"""

from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from fiqa_bench.metrics import ranking
from fiqa_bench.metrics.ranking import (
    AUTORANK_MIN_BLOCKS,
    Verdict,
    friedman_nemenyi,
    kendall_tau_matrix,
    mean_ranks,
    verdict_markdown,
)
from fiqa_bench.report.critical_difference import plot_critical_difference

#: Demšar 2006, Table 5(a): q_0.05 of the two-tailed Nemenyi test (Studentized range / sqrt 2), 3 decimals.
DEMSAR_Q05 = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728}

#: Demšar's q values are printed to 3 decimals (truncated: qsturng gives 2.34370 for k = 3).
Q_TOLERANCE = 1e-3

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def hand_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "A": [0.90, 0.85, 0.70, 0.95, 0.80, 0.75],
            "B": [0.80, 0.85, 0.75, 0.70, 0.60, 0.72],
            "C": [0.70, 0.60, 0.65, 0.50, 0.55, 0.40],
            "D": [0.60, 0.50, 0.40, 0.60, 0.65, 0.45],
        },
        index=["b1", "b2", "b3", "b4", "b5", "b6"],
    )


# The hand computation (module docstring): N = 6, k = 4, rank sums 7.5, 11.5, 21, 20.
N, K = 6, 4
RANK_SUMS = {"A": 7.5, "B": 11.5, "C": 21.0, "D": 20.0}
# Demšar Eq. 2: 12N/(k(k+1)) [sum R_j^2 - k(k+1)^2/4] = 3.6 * (1029.5/36 - 25) = 12.95
CHI2_F = 12 * N / (K * (K + 1)) * (sum((s / N) ** 2 for s in RANK_SUMS.values()) - K * (K + 1) ** 2 / 4)
# One tie of t = 2 values (b2): C = 1 - (2^3 - 2) / (N k (k^2 - 1)) = 1 - 6/360
TIE_CORRECTION = 1 - (2**3 - 2) / (N * K * (K**2 - 1))


def test_hand_numbers_are_what_the_docstring_says():
    assert CHI2_F == pytest.approx(12.95, abs=1e-12)
    assert TIE_CORRECTION == pytest.approx(354 / 360, abs=1e-15)
    assert sum(RANK_SUMS.values()) == N * K * (K + 1) / 2


def test_mean_ranks_average_ties_and_sort_best_first():
    ranks = mean_ranks(hand_table())
    assert ranks.index.tolist() == ["A", "B", "D", "C"]
    expected = pd.Series({m: RANK_SUMS[m] / N for m in ["A", "B", "D", "C"]})
    np.testing.assert_allclose(ranks.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-12)


def test_mean_ranks_break_equal_mean_ranks_by_name_not_column_order():
    table = pd.DataFrame({"z": [1.0, 0.0], "a": [0.0, 1.0], "m": [-1.0, -1.0]}, index=["x", "y"])
    assert mean_ranks(table).index.tolist() == ["a", "z", "m"]
    assert mean_ranks(table[["a", "m", "z"]]).index.tolist() == ["a", "z", "m"]
    assert mean_ranks(table).tolist() == [1.5, 1.5, 3.0]


def test_friedman_statistic_and_p_match_the_hand_computation():
    verdict = friedman_nemenyi(hand_table())
    assert verdict.n_blocks == N and verdict.n_methods == K and verdict.degrees_of_freedom == K - 1
    # scipy (and so autorank) divide Demšar's chi2_F by the tie correction.
    assert verdict.statistic == pytest.approx(CHI2_F / TIE_CORRECTION, rel=1e-12)
    assert verdict.p_value == pytest.approx(chi2.sf(CHI2_F / TIE_CORRECTION, K - 1), rel=1e-9)
    assert 0.004 < verdict.p_value < 0.005
    assert verdict.methods == ("A", "B", "D", "C")
    assert dict(verdict.mean_ranks) == pytest.approx({m: s / N for m, s in RANK_SUMS.items()}, abs=1e-12)
    assert verdict.mean_ranks.index.tolist() == list(verdict.methods)
    assert verdict.engine.startswith("autorank")


def test_critical_difference_uses_demsars_q():
    verdict = friedman_nemenyi(hand_table())
    expected = DEMSAR_Q05[K] * math.sqrt(K * (K + 1) / (6 * N))  # 2.569 * sqrt(20/36) = 1.915
    assert verdict.critical_difference == pytest.approx(expected, abs=Q_TOLERANCE * math.sqrt(K * (K + 1) / (6 * N)))
    assert verdict.q_alpha == pytest.approx(DEMSAR_Q05[K], abs=Q_TOLERANCE)


@pytest.mark.parametrize("k", [3, 4, 5])
def test_critical_difference_q_for_other_k_and_few_blocks(k: int):
    rng = np.random.default_rng(k)
    for n in (2, 3, 7):
        table = pd.DataFrame(rng.normal(size=(n, k)), columns=[f"m{j}" for j in range(k)],
                             index=[f"b{i}" for i in range(n)])
        verdict = friedman_nemenyi(table)
        assert verdict.q_alpha == pytest.approx(DEMSAR_Q05[k], abs=Q_TOLERANCE)
        assert verdict.engine.startswith("autorank") == (n >= AUTORANK_MIN_BLOCKS)


def test_groups_join_methods_within_one_cd():
    # CD = 1.915: A-B 0.67 and B-C 1.58 are within it, A-D 2.08 is not.
    verdict = friedman_nemenyi(hand_table())
    assert verdict.groups == (("A", "B"), ("B", "D", "C"))
    assert verdict.best_group == ("A", "B")


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_small_tables_get_the_same_numbers_autorank_gives(alpha: float):
    """Below 5 blocks autorank refuses; the direct path (scipy + statsmodels) must agree with it where both run."""
    rng = np.random.default_rng(7)
    for table in (hand_table(), pd.DataFrame(rng.integers(0, 3, size=(9, 6)).astype(float),  # many ties
                                             columns=list("uvwxyz"), index=[f"b{i}" for i in range(9)])):
        values = table.astype(float)
        _, p_direct = ranking._friedman(values)
        cd_direct = ranking._nemenyi_cd(alpha, values.shape[1], len(values))
        p_autorank, cd_autorank = ranking._from_autorank(values, alpha, mean_ranks(table))
        assert p_direct == pytest.approx(p_autorank, rel=1e-12)
        assert cd_direct == pytest.approx(cd_autorank, rel=1e-12)


def test_the_formula_used_for_two_methods_is_what_scipy_computes():
    """Two methods: scipy refuses, so Demšar's Eq. 2 / C is evaluated directly; on 3+ methods it must equal scipy."""
    rng = np.random.default_rng(3)
    for n, k in ((2, 3), (6, 4), (11, 7)):
        values = pd.DataFrame(rng.integers(0, 4, size=(n, k)).astype(float))  # ties in most blocks
        values = values[values.nunique(axis="columns") > 1]
        assert ranking._friedman_formula(values) == pytest.approx(ranking._friedman(values)[0], rel=1e-12)
    assert ranking._friedman_formula(hand_table()) == pytest.approx(CHI2_F / TIE_CORRECTION, rel=1e-12)


def test_two_blocks_by_hand():
    # b1: A 1, B 2, C 3, D 4; b4: A 1, B 2, C 4, D 3 -> sums 2, 4, 7, 7; no ties within a block.
    verdict = friedman_nemenyi(hand_table().loc[["b1", "b4"]])
    n, k = 2, 4
    chi2_f = 12 * n / (k * (k + 1)) * (sum((s / n) ** 2 for s in (2, 4, 7, 7)) - k * (k + 1) ** 2 / 4)  # 5.4
    assert verdict.statistic == pytest.approx(chi2_f, rel=1e-12)
    assert verdict.p_value == pytest.approx(chi2.sf(chi2_f, k - 1), rel=1e-9)
    assert verdict.critical_difference == pytest.approx(DEMSAR_Q05[k] * math.sqrt(k * (k + 1) / (6 * n)), abs=2e-3)
    assert "needs at least 5 blocks; this table has 2" in verdict.engine


def test_kendall_tau_b_by_counting_pairs():
    tau = kendall_tau_matrix(hand_table())
    assert tau.index.tolist() == tau.columns.tolist() == ["b1", "b2", "b3", "b4", "b5", "b6"]
    np.testing.assert_array_equal(np.diag(tau.to_numpy()), np.ones(6))
    np.testing.assert_allclose(tau.to_numpy(), tau.to_numpy().T, rtol=0, atol=0)
    # b1 vs b4: of the 6 pairs only (C, D) swaps: n_c = 5, n_d = 1, no ties -> (5 - 1) / 6
    assert tau.loc["b1", "b4"] == pytest.approx((5 - 1) / 6, abs=1e-12)
    # b1 vs b2: A = B tie in b2 (n_2 = 1), the other 5 pairs agree: tau_b = 5 / sqrt(6 * 5), not tau_a = 5/6
    assert tau.loc["b1", "b2"] == pytest.approx(5 / math.sqrt(6 * 5), abs=1e-12)
    # b3 (B > A > C > D) vs b6 (A > B > D > C): concordant (A,C), (A,D), (B,C), (B,D); discordant (A,B), (C,D)
    assert tau.loc["b3", "b6"] == pytest.approx((4 - 2) / 6, abs=1e-12)
    # b3 vs b5 (A > D > B > C): concordant (A,C), (A,D), (B,C); discordant (A,B), (B,D), (C,D)
    assert tau.loc["b5", "b3"] == pytest.approx(0.0, abs=1e-12)


def test_kendall_tau_is_nan_for_a_block_that_ties_every_method():
    table = pd.DataFrame({"A": [1.0, 0.5, 0.9], "B": [0.0, 0.5, 0.1], "C": [0.5, 0.5, 0.0]},
                         index=["x", "flat", "y"])
    tau = kendall_tau_matrix(table)
    assert np.isnan(tau.loc["x", "flat"]) and np.isnan(tau.loc["flat", "y"])
    assert tau.loc["flat", "flat"] == 1.0
    assert "n/a" in verdict_markdown(friedman_nemenyi(table), tau)


@pytest.mark.parametrize("function", [mean_ranks, friedman_nemenyi, kendall_tau_matrix])
def test_refuses_nan_naming_the_block_and_method(function):
    table = hand_table()
    table.loc["b3", "C"] = np.nan
    with pytest.raises(ValueError, match=r"block 'b3', method 'C' is nan"):
        function(table)
    table.loc["b3", "C"] = np.inf
    with pytest.raises(ValueError, match=r"block 'b3', method 'C' is inf"):
        function(table)


@pytest.mark.parametrize("function", [mean_ranks, friedman_nemenyi, kendall_tau_matrix])
def test_refuses_too_small_tables(function):
    with pytest.raises(ValueError, match=r"at least 2 blocks.*\['b1'\]"):
        function(hand_table().loc[["b1"]])
    with pytest.raises(ValueError, match=r"at least \d methods.*\['A'\]"):
        function(hand_table()[["A"]])


def test_two_methods_is_a_sign_test():
    # A vs B over the 6 blocks: A wins b1, b4, b5, b6; B wins b3; b2 ties.  Friedman with k = 2 is the sign test
    # in chi-squared form, ties dropped: (W - L)^2 / (W + L) = (4 - 1)^2 / 5 = 1.8, df = 1.
    verdict = friedman_nemenyi(hand_table()[["B", "A"]])
    assert verdict.methods == ("A", "B") and verdict.degrees_of_freedom == 1
    assert verdict.statistic == pytest.approx(1.8, rel=1e-12)
    assert verdict.p_value == pytest.approx(chi2.sf(1.8, 1), rel=1e-12)
    assert verdict.critical_difference == pytest.approx(DEMSAR_Q05[2] * math.sqrt(2 * 3 / (6 * N)), abs=1e-3)
    assert verdict.groups == (("A", "B"),)  # 1.917 - 1.583 = 0.33 < CD = 0.80
    assert "need at least 3 methods" in verdict.engine
    assert "sign test" in verdict_markdown(verdict, kendall_tau_matrix(hand_table()[["A", "B"]]))


def test_friedman_refuses_bad_input():
    with pytest.raises(ValueError, match="repeated: \\['A'\\]"):
        friedman_nemenyi(hand_table().set_axis(["A", "A", "C", "D"], axis="columns"))
    with pytest.raises(TypeError, match="method names must be strings"):
        friedman_nemenyi(hand_table().set_axis([0, 1, 2, 3], axis="columns"))
    with pytest.raises(TypeError, match="method 'B' has a value that is not a number"):
        friedman_nemenyi(hand_table().astype(object).assign(B="good"))
    for alpha in (0.0, 1.0, 0.0001, True):
        with pytest.raises(ValueError, match="alpha must be"):
            friedman_nemenyi(hand_table(), alpha=alpha)
    with pytest.raises(ValueError, match="every block ties all 3 methods"):
        friedman_nemenyi(pd.DataFrame(np.ones((5, 3)), columns=["a", "b", "c"], index=list("vwxyz")))


def test_verdict_is_quiet_deterministic_and_independent_of_column_order(capfd: pytest.CaptureFixture[str]):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # autorank warns and prints its tables; none of it may leak
        first = friedman_nemenyi(hand_table())
        again = friedman_nemenyi(hand_table())
        shuffled = friedman_nemenyi(hand_table()[["D", "B", "C", "A"]].iloc[::-1])
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert first == again == shuffled
    assert first != friedman_nemenyi(hand_table(), alpha=0.1)
    assert first != friedman_nemenyi(hand_table().iloc[:5])
    assert isinstance(first, Verdict) and pickle.loads(pickle.dumps(first)) == first
    with pytest.raises(AttributeError):
        first.alpha = 0.1  # type: ignore[misc]


def test_markdown_has_the_rank_table_friedman_line_cd_and_tau():
    verdict = friedman_nemenyi(hand_table())
    text = verdict_markdown(verdict, kendall_tau_matrix(hand_table()))
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0].split("|")[1:4] == [" method   ", " mean rank   ", " in the group of the best   "]
    assert rows[1].split("|")[2].strip() == "1.250"
    assert [row.split("|")[1].strip() for row in rows[1:5]] == ["A", "B", "D", "C"]
    assert [row.split("|")[3].strip() for row in rows[1:5]] == ["yes", "yes", "no", "no"]
    assert f"chi2_F = {CHI2_F / TIE_CORRECTION:.3f} (tie-corrected), df = 3, p = {verdict.p_value:.3g}" in text
    assert "N = 6 blocks, k = 4 methods" in text
    assert "CD = 1.915" in text and "A, B; B, D, C" in text
    assert "| b1 | 1.00 | 0.91 |" in text  # tau(b1, b2) = 5/sqrt(30) = 0.913
    assert "rough" not in text  # 6 >= 5 blocks
    small = verdict_markdown(friedman_nemenyi(hand_table().iloc[:3]), kendall_tau_matrix(hand_table().iloc[:3]))
    assert "Only 3 blocks" in small


def test_markdown_says_when_friedman_does_not_reject():
    table = pd.DataFrame({"A": [1.0, 0.0, 0.5], "B": [0.0, 1.0, 0.4], "C": [0.5, 0.5, 0.6]}, index=["x", "y", "z"])
    verdict = friedman_nemenyi(table)
    assert verdict.p_value > 0.05
    assert "does not reject" in verdict_markdown(verdict, kendall_tau_matrix(table))


def test_cd_diagram_is_a_png_written_deterministically(tmp_path: Path):
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    verdict = friedman_nemenyi(hand_table())
    first, second = tmp_path / "cd.png", tmp_path / "sub" / "cd-again.png"
    plot_critical_difference(verdict, first, "lfw and faces94")
    plot_critical_difference(verdict, second, "lfw and faces94")
    data = first.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5_000
    assert second.read_bytes() == data  # same process, same matplotlib: nothing random in the drawing
    assert plt.get_fignums() == before  # the figure was closed
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_cd_diagram_draws_one_thick_bar_per_group_and_every_method(tmp_path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    verdict = friedman_nemenyi(hand_table())
    thick, texts = [], []
    original_plot, original_text = plt.Axes.plot, plt.Axes.text

    def spy_plot(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if kwargs.get("linewidth", 0) >= 3:
            thick.append(tuple(args[0]))
        return original_plot(self, *args, **kwargs)

    def spy_text(self, x, y, s, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        texts.append(s)
        return original_text(self, x, y, s, *args, **kwargs)

    plt.Axes.plot, plt.Axes.text = spy_plot, spy_text
    try:
        plot_critical_difference(verdict, tmp_path / "cd.png", "t")
    finally:
        plt.Axes.plot, plt.Axes.text = original_plot, original_text
    ranks = dict(verdict.mean_ranks)
    assert len(thick) == 2
    assert thick[0] == pytest.approx((ranks["A"] - 0.06, ranks["B"] + 0.06))
    assert thick[1] == pytest.approx((ranks["B"] - 0.06, ranks["C"] + 0.06))
    assert {"A (1.25)", "B (1.92)", "D (3.33)", "C (3.50)", "CD = 1.91"} <= set(texts)
