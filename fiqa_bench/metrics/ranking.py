"""The cross-dataset verdict: mean ranks, Friedman test, Nemenyi critical difference, Kendall tau between blocks.

Input: a table with one row per *block* (a dataset evaluated with one recogniser, e.g. "lfw on dlib-resnet")
and one column per quality *method*, each cell a score where higher is better (the AOC).  The statistics
follow Demšar, "Statistical comparisons of classifiers over multiple data sets", JMLR 7:1-30, 2006, Sec. 3.2:

Ranks.  Within each block the methods are ranked, ``r_ij = 1`` for the best value, ties sharing the average
of the ranks they span (two methods tied for first both get 1.5).  The mean rank of method ``j`` over the
``N`` blocks is ``R_j = 1/N sum_i r_ij``; lower is better, and ``sum_j R_j = k(k+1)/2``.

Friedman test (Friedman, JASA 1937; Demšar Eq. 2).  Under the null hypothesis that all ``k`` methods are
equivalent,

    chi2_F = 12N / (k(k+1)) * [ sum_j R_j^2 - k(k+1)^2 / 4 ]

is approximately chi-squared with ``k - 1`` degrees of freedom.  :func:`friedman_nemenyi` reports the value
``scipy.stats.friedmanchisquare`` computes, which divides ``chi2_F`` by the usual tie correction (Hollander &
Wolfe, "Nonparametric Statistical Methods", 1973, Sec. 7.1)

    C = 1 - sum_i sum_g (t_ig^3 - t_ig) / (N k (k^2 - 1)),

``t_ig`` the size of the ``g``-th group of tied values in block ``i`` (``C = 1`` without ties, so the two
agree then), and ``p = P(chi2_{k-1} >= chi2_F / C)``.  This is the p-value autorank reports.  Demšar (after
Iman & Davenport, 1980) notes that the chi-squared approximation is conservative and wants roughly
``N > 10`` and ``k > 5``; with the few blocks of a FIQA benchmark the p-value is a rough guide.

Nemenyi critical difference (Nemenyi, 1963; Demšar Eq. 5).  Two methods differ significantly at level
``alpha`` when their mean ranks differ by more than

    CD = q_alpha * sqrt( k(k+1) / (6N) ),

``q_alpha`` the Studentized range quantile ``q(1 - alpha; k, inf)`` divided by ``sqrt(2)`` (Demšar's Table 5a:
``q_0.05`` = 1.960, 2.343, 2.569, 2.728 for ``k`` = 2 .. 5).  Equivalently
``CD = q(1 - alpha; k, inf) * sqrt(k(k+1) / (12N))``, the form autorank evaluates with statsmodels' ``qsturng``.
Methods "not significantly different" are drawn as groups: maximal runs of consecutive methods (in mean-rank
order) whose first and last mean ranks differ by at most ``CD`` (autorank's ``get_sorted_rank_groups``, the
thick bars of a CD diagram).

Engines.  The Friedman p-value, the CD and the groups come from autorank (Herbold, JOSS 5(48):2173, 2020)
with ``force_mode="nonparametric"``; the statistic itself, which autorank does not return, from
``scipy.stats.friedmanchisquare``, the call autorank makes for its p-value.  autorank refuses fewer than 5
blocks: for 2 to 4 blocks the same two calls autorank makes (``scipy.stats.friedmanchisquare`` and
``statsmodels`` ``qsturng``) give the p-value and the CD directly.  For two methods scipy refuses the Friedman
test and autorank runs Wilcoxon's signed-rank test instead (as Demšar Sec. 3.1 recommends); the statistic is
then the formula above with the tie correction (a two-sided sign test in chi-squared form), checked against
scipy on larger tables in the tests.  :attr:`Verdict.engine` says which was used.  The groups are always
autorank's ``get_sorted_rank_groups``.

Kendall tau-b (Kendall, Biometrika 1945) between two blocks' rankings of the ``k`` methods, over the
``n0 = k(k-1)/2`` pairs of methods:

    tau_b = (n_c - n_d) / sqrt( (n0 - n_1)(n0 - n_2) ),

``n_c`` / ``n_d`` the concordant / discordant pairs and ``n_1`` / ``n_2`` the pairs tied in the first / second
block (``scipy.stats.kendalltau``, ``variant="b"``).  A block whose methods all tie has no ranking: its tau
with any other block is NaN.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, fields
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "AUTORANK_MIN_BLOCKS",
    "Verdict",
    "friedman_nemenyi",
    "kendall_tau_matrix",
    "mean_ranks",
    "verdict_markdown",
]

#: autorank's ``autorank()`` raises ValueError below this many rows (blocks).
AUTORANK_MIN_BLOCKS = 5

#: The range of ``alpha`` statsmodels' ``qsturng`` (the Studentized range quantile) accepts.
ALPHA_RANGE = (0.001, 0.9)


@dataclass(frozen=True, eq=False)
class Verdict:
    """The Friedman-Nemenyi verdict over ``n_blocks`` blocks and ``n_methods`` methods.

    Two verdicts are equal when every field is (the mean ranks exactly, labels and order included).

    Attributes:
        mean_ranks: mean rank indexed by method, best (lowest) first; equal mean ranks in name order
            (:func:`mean_ranks`; a copy: changing it changes nothing else).
        statistic: Friedman's ``chi2_F`` divided by the tie correction (``scipy.stats.friedmanchisquare``).
        p_value: ``P(chi2_{k-1} >= statistic)``.
        critical_difference: Nemenyi's ``CD = q_alpha sqrt(k(k+1)/(6N))``, in mean-rank units.
        n_blocks: ``N``.
        n_methods: ``k``.
        alpha: the significance level of the test and of the CD.
        groups: the maximal runs of methods (best first within each) whose mean ranks differ by at most
            the CD, as autorank reports them; a method in no group differs significantly from all others.
        engine: what computed ``p_value``, ``critical_difference`` and ``groups``.
    """

    mean_ranks: pd.Series
    statistic: float
    p_value: float
    critical_difference: float
    n_blocks: int
    n_methods: int
    alpha: float
    groups: tuple[tuple[str, ...], ...]
    engine: str

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods, best first."""
        return tuple(self.mean_ranks.index)

    @property
    def degrees_of_freedom(self) -> int:
        """``k - 1``, of the Friedman statistic's chi-squared distribution."""
        return self.n_methods - 1

    @property
    def q_alpha(self) -> float:
        """Demšar's ``q_alpha`` (Studentized range quantile / sqrt 2) that the CD was computed with."""
        k, n = self.n_methods, self.n_blocks
        return self.critical_difference / math.sqrt(k * (k + 1) / (6 * n))

    @property
    def best_group(self) -> tuple[str, ...]:
        """The methods not significantly different from the best one (the best included), best first."""
        best = self.methods[0]
        for group in self.groups:
            if group[0] == best:
                return group
        return (best,)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return all(
            getattr(self, f.name).equals(getattr(other, f.name))
            and getattr(self, f.name).index.equals(getattr(other, f.name).index)
            if f.name == "mean_ranks" else getattr(self, f.name) == getattr(other, f.name)
            for f in fields(self)
        )

    __hash__ = None  # type: ignore[assignment]  # holds a Series


def _checked(table: pd.DataFrame, *, min_methods: int = 2) -> pd.DataFrame:
    """``table`` as floats, or ValueError/TypeError naming what is wrong with it."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame (rows = blocks, columns = methods), got {type(table).__name__}")
    for axis, labels in (("block", table.index), ("method", table.columns)):
        for label in labels:
            if not isinstance(label, str):
                raise TypeError(f"{axis} names must be strings, got {label!r} ({type(label).__name__})")
        duplicated = labels[labels.duplicated()].unique().tolist()
        if duplicated:
            raise ValueError(f"{axis} names must be unique; repeated: {duplicated}")
    n_blocks, n_methods = table.shape
    if n_blocks < 2:
        raise ValueError(f"need at least 2 blocks (rows) to compare methods across, got {n_blocks}: "
                         f"{table.index.tolist()}")
    if n_methods < min_methods:
        raise ValueError(f"need at least {min_methods} methods (columns) to rank, got {n_methods}: "
                         f"{table.columns.tolist()}")
    for method in table.columns:
        try:
            table[method].astype(float)
        except (TypeError, ValueError) as err:
            raise TypeError(f"method {method!r} has a value that is not a number: {err}") from None
    values = table.astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        i, j = (int(x[0]) for x in np.nonzero(bad))
        raise ValueError(f"block {values.index[i]!r}, method {values.columns[j]!r} is {float(values.iat[i, j])!r}; "
                         f"every method needs a finite value on every block ({int(bad.sum())} such cell(s))")
    return values


def _rank_sums(values: pd.DataFrame) -> pd.Series:
    """Per method, the sum over blocks of its rank in the block (1 = highest value, ties averaged): sums of
    half-integers, exact in floating point, so equal sums compare equal."""
    return values.rank(axis="columns", ascending=False, method="average").sum(axis="index")


def _best_first(scores: pd.Series) -> pd.Series:
    """``scores`` (lower = better) sorted best first, equal scores in name order."""
    order = sorted(scores.index, key=lambda method: (scores[method], method))
    return scores.reindex(order)


def mean_ranks(table: pd.DataFrame) -> pd.Series:
    """Mean rank of every method over the blocks (Demšar 2006, Sec. 3.2.2): ``R_j = 1/N sum_i r_ij``.

    Args:
        table: rows = blocks, columns = methods, higher value = better (e.g. the AOC); no NaN.

    Returns:
        Mean ranks indexed by method, best (lowest) first; ``r_ij = 1`` for the block's highest value and tied
        values share the average of their ranks.  Equal mean ranks are listed in name order.
    """
    values = _checked(table)
    sums = _best_first(_rank_sums(values))
    return (sums / len(values)).rename("mean rank")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence what autorank prints (it prints its result table unconditionally) and warns."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _from_autorank(values: pd.DataFrame, alpha: float, ranks: pd.Series) -> tuple[float, float]:
    """``(p, CD)`` from ``autorank.autorank``; its mean ranks must equal ``ranks``."""
    with _quiet():
        from autorank import autorank

        result = autorank(values.reset_index(drop=True), alpha=alpha, verbose=False, order="descending",
                          approach="frequentist", force_mode="nonparametric")
    if result.omnibus != "friedman" or result.posthoc != "nemenyi":
        raise RuntimeError(f"autorank ran {result.omnibus}/{result.posthoc}, not friedman/nemenyi")
    # autorank 1.3.0 lists rankdf worst first under order="descending"; read it by name, never by position.
    theirs = result.rankdf["meanrank"].astype(float).reindex(ranks.index)
    if not np.allclose(theirs.to_numpy(), ranks.to_numpy(), rtol=0, atol=1e-12):
        raise RuntimeError(f"autorank's mean ranks {theirs.to_dict()} differ from ours {ranks.to_dict()}")
    return float(result.pvalue), float(result.cd)


def _friedman_formula(values: pd.DataFrame) -> float:
    """Demšar's Eq. 2 divided by the tie correction ``C`` (module docstring): what
    ``scipy.stats.friedmanchisquare`` computes, for the two-method tables it refuses."""
    n, k = values.shape
    r = values.rank(axis="columns", method="average").mean(axis="index").to_numpy()
    chi2_f = 12 * n / (k * (k + 1)) * (float(np.sum(r**2)) - k * (k + 1) ** 2 / 4)
    tied = sum(float(np.sum(t**3 - t)) for t in (row.value_counts().to_numpy() for _, row in values.iterrows()))
    return chi2_f / (1 - tied / (n * k * (k**2 - 1)))


def _friedman(values: pd.DataFrame) -> tuple[float, float]:
    """``(statistic, p)`` of the tie-corrected Friedman test, ``p`` from chi-squared with ``k - 1`` df."""
    k = values.shape[1]
    if k >= 3:
        with _quiet():
            result = stats.friedmanchisquare(*values.to_numpy().T)
        return float(result.statistic), float(result.pvalue)
    statistic = _friedman_formula(values)
    return statistic, float(stats.chi2.sf(statistic, k - 1))


def _nemenyi_cd(alpha: float, k: int, n: int) -> float:
    """``q(1 - alpha; k, inf) sqrt(k(k+1)/(12N))`` with statsmodels' ``qsturng``, as autorank computes it."""
    from statsmodels.stats.libqsturng import qsturng

    return float(qsturng(1 - alpha, k, np.inf) * math.sqrt(k * (k + 1) / (12 * n)))


def _groups(ranks: pd.Series, cd: float) -> tuple[tuple[str, ...], ...]:
    """autorank's groups of methods within ``cd`` of each other, ``ranks`` sorted best first."""
    with _quiet():
        from autorank._util import get_sorted_rank_groups

    # get_sorted_rank_groups reads only ``rankdf.meanrank`` (in the order given) and ``cd``; autorank's own
    # cd_diagram hands it the result re-sorted by mean rank, as here.
    result = SimpleNamespace(rankdf=pd.DataFrame({"meanrank": ranks}), cd=cd)
    _, names, spans = get_sorted_rank_groups(result, False)
    return tuple(tuple(names[i:j + 1]) for i, j in spans)


def friedman_nemenyi(table: pd.DataFrame, alpha: float = 0.05) -> Verdict:
    """Friedman test over the blocks and Nemenyi's critical difference (Demšar 2006, Sec. 3.2.2).

    ``chi2_F = 12N/(k(k+1)) [sum_j R_j^2 - k(k+1)^2/4]`` (tie-corrected as scipy does), ``df = k - 1``;
    ``CD = q_alpha sqrt(k(k+1)/(6N))``.  See the module docstring for the tie correction and the engines.

    Args:
        table: rows = blocks (at least 2), columns = methods (at least 2), higher value = better; no NaN.
        alpha: significance level of the test and of the CD, in [0.001, 0.9].

    Raises:
        ValueError: NaN or infinite cells (naming the block and method), fewer than 2 blocks or 2 methods,
            repeated names, an ``alpha`` out of range, or every block tying every method (nothing to rank).
    """
    values = _checked(table)
    n, k = values.shape
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
            or not ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]:
        raise ValueError(f"alpha must be a number in [{ALPHA_RANGE[0]}, {ALPHA_RANGE[1]}] "
                         f"(statsmodels qsturng's range), got {alpha!r}")
    alpha = float(alpha)
    ranks = mean_ranks(values)
    if all(values.iloc[i].nunique() == 1 for i in range(n)):
        raise ValueError(f"every block ties all {k} methods: there is no ranking to test")
    statistic, p = _friedman(values)
    if n >= AUTORANK_MIN_BLOCKS and k >= 3:
        p, cd = _from_autorank(values, alpha, ranks)
        engine = "autorank (its Friedman p-value and Nemenyi CD)"
    elif k >= 3:
        cd = _nemenyi_cd(alpha, k, n)
        engine = (f"scipy.stats.friedmanchisquare and statsmodels qsturng, the calls autorank makes "
                  f"(autorank itself needs at least {AUTORANK_MIN_BLOCKS} blocks; this table has {n})")
    else:
        cd = _nemenyi_cd(alpha, k, n)
        engine = ("Demšar's Eq. 2 with scipy's tie correction, and statsmodels qsturng "
                  "(scipy.stats.friedmanchisquare and autorank need at least 3 methods)")
    return Verdict(
        mean_ranks=ranks.copy(),
        statistic=statistic, p_value=p, critical_difference=cd, n_blocks=n, n_methods=k, alpha=alpha,
        groups=_groups(ranks, cd), engine=engine,
    )


def kendall_tau_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Kendall's tau-b between every two blocks' rankings of the methods (``scipy.stats.kendalltau``).

    ``tau_b = (n_c - n_d) / sqrt((n0 - n_1)(n0 - n_2))`` over the ``n0 = k(k-1)/2`` pairs of methods
    (Kendall 1945); 1 = the two blocks order the methods the same way, -1 = reversed.

    Returns:
        A symmetric blocks x blocks frame in the table's block order, 1 on the diagonal; NaN between a block
        whose methods all tie and any other block.
    """
    values = _checked(table)
    blocks = values.index.tolist()
    matrix = pd.DataFrame(np.eye(len(blocks)), index=blocks, columns=blocks)
    rows = values.to_numpy()
    with _quiet():
        for i in range(len(blocks)):
            for j in range(i + 1, len(blocks)):
                tau = float(stats.kendalltau(rows[i], rows[j], variant="b").statistic)
                matrix.iat[i, j] = matrix.iat[j, i] = tau
    return matrix


def _fmt(x: float, spec: str) -> str:
    return "n/a" if not np.isfinite(x) else format(x, spec)


def verdict_markdown(verdict: Verdict, tau: pd.DataFrame) -> str:
    """The verdict as Markdown: mean-rank table, Friedman line, CD, then the Kendall tau matrix (2 decimals)."""
    best = set(verdict.best_group)
    ranks = pd.DataFrame(
        [[method, f"{rank:.3f}", "yes" if method in best else "no"] for method, rank in verdict.mean_ranks.items()],
        columns=["method", "mean rank", "in the group of the best"],
    )
    groups = "; ".join(", ".join(group) for group in verdict.groups) or "none"
    lines = [
        f"Mean ranks over N = {verdict.n_blocks} blocks (1 = best):",
        "",
        ranks.to_markdown(index=False, disable_numparse=True),
        "",
        f"Friedman test: chi2_F = {verdict.statistic:.3f} (tie-corrected), df = {verdict.degrees_of_freedom}, "
        f"p = {verdict.p_value:.3g}; N = {verdict.n_blocks} blocks, k = {verdict.n_methods} methods.",
        "",
        f"Nemenyi critical difference at alpha = {verdict.alpha:g}: CD = {verdict.critical_difference:.3f} "
        f"(q_alpha = {verdict.q_alpha:.3f}).  Not significantly different: {groups}.",
    ]
    if verdict.p_value >= verdict.alpha:
        lines += ["", f"The Friedman test does not reject equal performance at alpha = {verdict.alpha:g}: "
                      "the mean-rank differences and groups are not significant."]
    if verdict.n_methods == 2:
        lines += ["", "With two methods the Friedman test is a sign test; Demšar (2006, Sec. 3.1) prefers "
                      "Wilcoxon's signed-rank test."]
    if verdict.n_blocks < AUTORANK_MIN_BLOCKS:
        lines += ["", f"Only {verdict.n_blocks} blocks: the chi-squared approximation of the Friedman test is "
                      "rough (Demšar 2006 wants N > 10, k > 5)."]
    lines += ["", f"Computed with {verdict.engine}.", "", "Kendall tau-b between the blocks' rankings:", ""]
    cells = tau.map(lambda x: _fmt(float(x), ".2f"))
    lines.append(cells.to_markdown(disable_numparse=True))
    return "\n".join(lines) + "\n"
