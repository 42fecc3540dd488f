"""Quality scores and demographic groups: distribution distances and per-group error rates.

SDD-FIQA Sec. 4.2.4 and Fig. 5, after Terhörst et al., "Face quality
estimation and its correlation to demographic and non-demographic bias in
face recognition" (IJCB 2020): the quality scores of the images of each
demographic group (UTKFace age bins, race) are compared; the further apart
the groups' score distributions, the more the quality measure depends on the
group.  The paper plots the distributions and does not state a number or a
normalisation; here the distance is measured, two ways.

Wasserstein-1 distance between two empirical samples ``a`` (n values) and
``b`` (m values), with ``F^-1`` the (left-continuous) quantile function::

    W1(a, b) = integral_0^1 |F_a^-1(u) - F_b^-1(u)| du
             = integral |F_a(x) - F_b(x)| dx

On the sorted samples ``F_a^-1`` is constant on ``[i/n, (i+1)/n)`` and
``F_b^-1`` on ``[j/m, (j+1)/m)``; in units of ``1/(n m)`` every breakpoint
is an integer (``i m`` or ``j n``), so the integral is an exact finite sum
over the merged breakpoints (:func:`wasserstein_1d`; it equals
``scipy.stats.wasserstein_distance``).

Two distances per pair of groups (:func:`pairwise_group_tests`):

* ``wasserstein``: W1 of the raw quality scores.  This is the distance
  between the distributions as the paper's Fig. 5 draws them (each method's
  scores on its own axis).  It has the unit of the score, so it compares
  groups *within* one method; across methods it mostly compares score
  scales (a method whose scores span [0, 100] shows 100 times the distance
  of the same ranking on [0, 1]).
* ``wasserstein_rank``: W1 after mapping every quality to its rank
  percentile over *all* images with a finite quality (labelled or not), the
  mid-distribution value

      p(x) = (|{q < x}| + |{q = x}| / 2) / N        in (0, 1)

  (ties share one value).  It is invariant to any strictly increasing
  transform of the scores, lies in [0, 1) and reads as "how far apart, in
  fractions of the dataset's quality ranking, the groups sit": comparable
  across methods.  The paper's claim that SDD-FIQA is less biased than
  SER-FIQ and PCNet is a cross-method comparison, for which this is the
  meaningful number.

The two-sample Kolmogorov-Smirnov statistic ``D = sup_x |F_a(x) - F_b(x)|``
(``scipy.stats.ks_2samp``, two-sided, ``method="auto"``: exact for small
samples) is rank-based and hence scale-free too; its p-value tests equality
of the two distributions.

Per-group error rates (:func:`group_error_rates`; not in the paper, see
DESIGN.md): with identities and group labels (LFW + gender), the FNMR of
each group's genuine comparisons at one global threshold (accept if
``s >= t``, see :mod:`.thresholds`), and how it moves when the lowest-quality
fraction of *all* images is discarded, as in :mod:`.discard` (images axis,
pair quality = min, ties discarded together, achieved <= requested, NaN
qualities discarded first).  Alongside, the fraction of each group's images
discarded at each point: does rejection remove one group more than another?

Group labels are any hashable values; ``None`` (or a float NaN) marks an
image without a label (it is counted, and left out of every group).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from fiqa_bench.metrics._common import (
    as_qualities,
    as_scores,
    check_discard_fractions,
    nan_to_none,
    quality_ranks,
)
from fiqa_bench.metrics.comparisons import Comparisons
from fiqa_bench.metrics.discard import DEFAULT_DISCARD_FRACTIONS, _cutoffs, _suffix

__all__ = [
    "GroupDistribution",
    "GroupDistributions",
    "GroupPairTest",
    "PairwiseGroupTests",
    "GroupErrorCurve",
    "GroupErrorRates",
    "wasserstein_1d",
    "rank_percentiles",
    "group_distributions",
    "pairwise_group_tests",
    "group_error_rates",
]

MIN_GROUP_SIZE = 2  # finite values a group needs for a distance or a test


# --------------------------------------------------------------------------- helpers


def _as_sample(name: str, values: object) -> np.ndarray:
    """A non-empty 1-D float64 array of finite values (:func:`~fiqa_bench.metrics._common.as_scores`, in float64)."""
    return as_scores(name, values).astype(np.float64, copy=False)


def _finite_or_nan_qualities(qualities: object, n: int | None = None) -> np.ndarray:
    """Qualities as float64; NaN allowed (not assessed), +-inf refused (no mean, no distance)."""
    q = np.asarray(qualities)
    q = as_qualities(q, len(q) if n is None else n)
    inf = np.isinf(q)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise ValueError(f"qualities hold {int(inf.sum())} infinite values (first at index {i}: {q[i]!r}); "
                         "use NaN for images that could not be assessed")
    return q


def _plain(label: Hashable) -> Hashable:
    """A numpy scalar label as the Python value (JSON-safe, prints cleanly)."""
    return label.item() if isinstance(label, np.generic) else label


def _missing(label: object) -> bool:
    """None, or a float NaN (as pandas writes a missing label)."""
    return label is None or (isinstance(label, (float, np.floating)) and math.isnan(label))


def _group_index(groups: object, n: int, order: Sequence[Hashable] | None) -> tuple[list, np.ndarray]:
    """``(labels, codes)``: the group labels in order and each sample's index into them (-1: unlabelled)."""
    if isinstance(groups, (str, bytes)):
        raise TypeError("groups must be a sequence of labels, one per sample, not a string")
    raw = [None if _missing(g) else _plain(g) for g in groups]  # type: ignore[union-attr]
    if len(raw) != n:
        raise ValueError(f"groups has {len(raw)} labels for {n} samples")
    present: dict = {}
    for g in raw:
        if g is not None and g not in present:
            present[g] = len(present)
    if order is None:
        try:
            labels = sorted(present)
        except TypeError:
            labels = sorted(present, key=str)
    else:
        labels = [_plain(g) for g in order]
        if len(set(labels)) != len(labels):
            raise ValueError(f"order lists a group twice: {labels}")
        missing = [g for g in present if g not in labels]
        if missing:
            raise ValueError(f"group {missing[0]!r} is not in order={labels}")
    position = {g: i for i, g in enumerate(labels)}
    codes = np.array([-1 if g is None else position[g] for g in raw], dtype=np.int64)
    return labels, codes


def _float_or_none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


# --------------------------------------------------------------------------- distances


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Wasserstein-1 distance between the empirical distributions of ``a`` and ``b``.

    ``integral_0^1 |F_a^-1(u) - F_b^-1(u)| du``, summed exactly over the merged
    breakpoints ``i/n`` and ``j/m`` of the two sorted samples (module docstring);
    equal to ``scipy.stats.wasserstein_distance(a, b)``.

    Args:
        a: ``(n,)`` finite values, n >= 1.
        b: ``(m,)`` finite values, m >= 1 (``n * m < 2**53``).

    Returns:
        The distance, in the unit of the values (0 for identical multisets).

    Example:
        >>> wasserstein_1d(np.array([0.0, 1.0]), np.array([0.0, 0.0, 3.0]))  # 1/6 * |1 - 0| + 2/6 * |1 - 3| = 5/6
        0.8333...
    """
    x = np.sort(_as_sample("a", a))
    y = np.sort(_as_sample("b", b))
    n, m = len(x), len(y)
    if n * m >= 2**53:
        raise ValueError(f"samples of {n} and {m} values are too large for exact breakpoints (n * m >= 2**53)")
    # breakpoints in units of 1/(n m): i m (a's quantile steps) and j n (b's)
    breaks = np.union1d(np.arange(n + 1, dtype=np.int64) * m, np.arange(m + 1, dtype=np.int64) * n)
    start, width = breaks[:-1], np.diff(breaks)
    gaps = np.abs(x[start // m] - y[start // n])
    return float(np.dot(width / float(n * m), gaps))


def rank_percentiles(qualities: np.ndarray) -> np.ndarray:
    """Each quality's mid-distribution rank percentile among the finite qualities.

    ``p(x) = (|{q < x}| + |{q = x}| / 2) / N`` over the ``N`` finite values;
    NaN stays NaN.  Ties share one value; the result is invariant to any
    strictly increasing transform of the qualities.

    Args:
        qualities: ``(N,)`` qualities, NaN for images not assessed.

    Returns:
        ``(N,)`` float64 in (0, 1), NaN where the quality is NaN.

    Example:
        >>> rank_percentiles(np.array([3.0, 1.0, 3.0, np.nan, 2.0])).tolist()
        [0.75, 0.125, 0.75, nan, 0.375]
    """
    q = _finite_or_nan_qualities(qualities)
    out = np.full(len(q), np.nan)
    finite = ~np.isnan(q)
    if not finite.any():
        return out
    _, inverse, counts = np.unique(q[finite], return_inverse=True, return_counts=True)
    at_or_below = np.cumsum(counts)
    out[finite] = ((at_or_below - counts / 2.0) / finite.sum())[inverse.ravel()]
    return out


# --------------------------------------------------------------------------- group distributions


@dataclass(frozen=True)
class GroupDistribution:
    """Summary of one group's quality scores (NaN qualities excluded).

    Attributes:
        group: the group label.
        n_images: images with this label.
        n_finite: of them, with a finite quality (the values summarised).
        n_nan: of them, with a NaN quality (not assessed).
        mean, median, q1, q3, minimum, maximum: of the finite qualities
            (quartiles by linear interpolation, ``numpy.percentile``'s default);
            NaN when ``n_finite == 0``.
    """

    group: Hashable
    n_images: int
    n_finite: int
    n_nan: int
    mean: float
    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def to_dict(self) -> dict:
        return {k: _float_or_none(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class GroupDistributions:
    """Per-group quality summaries, in group order.

    Attributes:
        groups: one :class:`GroupDistribution` per group.
        n_unlabelled: images without a group label (``None``), left out.
        n_unlabelled_nan: of them, with a NaN quality.
    """

    groups: tuple[GroupDistribution, ...]
    n_unlabelled: int
    n_unlabelled_nan: int

    def get(self, group: Hashable) -> GroupDistribution:
        for g in self.groups:
            if g.group == group:
                return g
        raise ValueError(f"no group {group!r}; have {[g.group for g in self.groups]}")

    def to_dict(self) -> dict:
        return {"groups": [g.to_dict() for g in self.groups], "n_unlabelled": self.n_unlabelled,
                "n_unlabelled_nan": self.n_unlabelled_nan}

    def to_markdown(self) -> str:
        lines = ["| group | images | NaN | mean | median | Q1 | Q3 |", "|---|---|---|---|---|---|---|"]
        for g in self.groups:
            stats = " | ".join("n/a" if math.isnan(v) else f"{v:.4g}" for v in (g.mean, g.median, g.q1, g.q3))
            lines.append(f"| {g.group} | {g.n_images} | {g.n_nan} | {stats} |")
        return "\n".join(lines)


def group_distributions(
    qualities: np.ndarray, groups: Sequence[Hashable], *, order: Sequence[Hashable] | None = None
) -> GroupDistributions:
    """Counts, mean, median and quartiles of the quality scores of each group.

    Args:
        qualities: ``(N,)`` quality per image; NaN = not assessed (excluded,
            counted per group); +-inf is refused.
        groups: ``N`` group labels; ``None`` = no label (excluded, counted).
        order: the groups to report, in this order (a listed group absent from
            ``groups`` is reported with zero images); default: the labels
            present, sorted.

    Returns:
        :class:`GroupDistributions`.

    Raises:
        ValueError: lengths differ, a label is not in ``order``, or a quality is infinite.
    """
    q = _finite_or_nan_qualities(qualities)
    labels, codes = _group_index(groups, len(q), order)
    nan = np.isnan(q)
    out = []
    for k, label in enumerate(labels):
        member = codes == k
        v = q[member & ~nan]
        if len(v):
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            stats = (float(v.mean()), float(med), float(q1), float(q3), float(v.min()), float(v.max()))
        else:
            stats = (float("nan"),) * 6
        out.append(GroupDistribution(label, int(member.sum()), len(v), int((member & nan).sum()), *stats))
    unlabelled = codes < 0
    return GroupDistributions(tuple(out), int(unlabelled.sum()), int((unlabelled & nan).sum()))


@dataclass(frozen=True)
class GroupPairTest:
    """Distance and two-sample test between the quality scores of two groups.

    Attributes:
        group_a, group_b: the labels (``a`` before ``b`` in group order).
        n_a, n_b: finite qualities in each group (the sample sizes used).
        wasserstein: W1 of the raw scores (unit of the score; Fig. 5's axes).
        wasserstein_rank: W1 of the rank percentiles over all images (scale-free, in [0, 1)).
        ks_statistic, ks_pvalue: ``scipy.stats.ks_2samp`` (two-sided, method "auto").
        reason: why the numbers are NaN (a group with fewer than 2 finite values), else None.
    """

    group_a: Hashable
    group_b: Hashable
    n_a: int
    n_b: int
    wasserstein: float
    wasserstein_rank: float
    ks_statistic: float
    ks_pvalue: float
    reason: str | None = None

    def to_dict(self) -> dict:
        return {k: _float_or_none(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class PairwiseGroupTests:
    """Every pair of groups, ``(g_i, g_j)`` with ``i < j`` in group order."""

    groups: tuple[Hashable, ...]
    pairs: tuple[GroupPairTest, ...]
    n_finite_total: int

    def get(self, group_a: Hashable, group_b: Hashable) -> GroupPairTest:
        """The test of two groups, in either order (the distances and KS are symmetric)."""
        for p in self.pairs:
            if (p.group_a, p.group_b) in ((group_a, group_b), (group_b, group_a)):
                return p
        raise ValueError(f"no pair ({group_a!r}, {group_b!r}); groups are {list(self.groups)}")

    def max_wasserstein_rank(self) -> float:
        """The largest scale-free distance over all pairs (NaN if none is defined)."""
        values = [p.wasserstein_rank for p in self.pairs if not math.isnan(p.wasserstein_rank)]
        return max(values) if values else float("nan")

    def to_dict(self) -> dict:
        return {"groups": list(self.groups), "pairs": [p.to_dict() for p in self.pairs],
                "n_finite_total": self.n_finite_total}

    def to_markdown(self) -> str:
        lines = ["| group A | group B | n A | n B | W1 (score) | W1 (rank percentile) | KS D | KS p |",
                 "|---|---|---|---|---|---|---|---|"]
        for p in self.pairs:
            if p.reason is not None:
                lines.append(f"| {p.group_a} | {p.group_b} | {p.n_a} | {p.n_b} | {p.reason} | | | |")
                continue
            lines.append(f"| {p.group_a} | {p.group_b} | {p.n_a} | {p.n_b} | {p.wasserstein:.4g} | "
                         f"{p.wasserstein_rank:.4f} | {p.ks_statistic:.4f} | {p.ks_pvalue:.3g} |")
        return "\n".join(lines)


def pairwise_group_tests(
    qualities: np.ndarray, groups: Sequence[Hashable], *, order: Sequence[Hashable] | None = None
) -> PairwiseGroupTests:
    """Wasserstein distances (raw and rank-percentile) and KS tests between every two groups.

    Args:
        qualities: ``(N,)`` quality per image; NaN = not assessed (excluded);
            +-inf is refused.
        groups: ``N`` group labels; ``None`` = no label.  Unlabelled images
            still count in the rank percentiles (the ranking is over all
            images with a finite quality), not in any group.
        order: group order, as in :func:`group_distributions`.

    Returns:
        :class:`PairwiseGroupTests`; a pair with a group of fewer than 2
        finite values has NaN numbers and a ``reason``.
    """
    from scipy.stats import ks_2samp

    q = _finite_or_nan_qualities(qualities)
    labels, codes = _group_index(groups, len(q), order)
    finite = ~np.isnan(q)
    p = rank_percentiles(q)
    values = [q[(codes == k) & finite] for k in range(len(labels))]
    ranks = [p[(codes == k) & finite] for k in range(len(labels))]
    pairs = []
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            n_a, n_b = len(values[i]), len(values[j])
            small = [f"group {labels[k]!r} has {len(values[k])} finite qualities"
                     for k in (i, j) if len(values[k]) < MIN_GROUP_SIZE]
            if small:
                reason = "; ".join(small) + f" (need >= {MIN_GROUP_SIZE})"
                pairs.append(GroupPairTest(labels[i], labels[j], n_a, n_b, *(float("nan"),) * 4, reason))
                continue
            ks = ks_2samp(values[i], values[j])
            pairs.append(GroupPairTest(
                labels[i], labels[j], n_a, n_b,
                wasserstein_1d(values[i], values[j]), wasserstein_1d(ranks[i], ranks[j]),
                float(ks.statistic), float(ks.pvalue),
            ))
    return PairwiseGroupTests(tuple(labels), tuple(pairs), int(finite.sum()))


# --------------------------------------------------------------------------- per-group error rates


@dataclass(frozen=True)
class GroupErrorCurve:
    """One group's FNMR and share of discarded images versus the global discard fraction.

    Arrays have one entry per discard point, shape ``(P,)``.

    Attributes:
        group: the label.
        n_images: images of the group.
        n_nan_images: of them with a NaN quality (discarded first).
        n_genuine_total: the group's genuine comparisons (both samples in the group).
        n_genuine: of them remaining (both samples kept) at each point.
        n_false_non_matches: remaining ones with ``score < threshold``.
        fnmr: ``n_false_non_matches / n_genuine``; NaN where none remains.
        n_images_discarded: the group's images discarded at each point.
        images_discarded: ``n_images_discarded / n_images`` (NaN for an empty group).
    """

    group: Hashable
    n_images: int
    n_nan_images: int
    n_genuine_total: int
    n_genuine: np.ndarray
    n_false_non_matches: np.ndarray
    fnmr: np.ndarray
    n_images_discarded: np.ndarray
    images_discarded: np.ndarray

    def to_dict(self) -> dict:
        out = {}
        for key, value in self.__dict__.items():
            out[key] = nan_to_none(value) if isinstance(value, np.ndarray) else value
        return out


@dataclass(frozen=True)
class GroupErrorRates:
    """Per-group FNMR at one global threshold as the lowest-quality images of all groups are discarded.

    Attributes:
        threshold: accept if ``score >= threshold`` (fixed; not recomputed after discarding).
        discard_requested, discard_achieved: ``(P,)`` fractions of *all* images
            (achieved: whole quality-tie groups, ``<=`` requested).
        groups: one :class:`GroupErrorCurve` per group, in group order.
        n_genuine_all, fnmr_all: ``(P,)`` every remaining genuine comparison
            (mixed and unlabelled ones included), for reference.
        n_images_total, n_nan_images, n_unlabelled_images: image counts.
        n_genuine_total: all genuine comparisons.
        n_genuine_mixed: genuine comparisons whose two samples carry different
            labels: in no group's FNMR (``fnmr_all`` only).
        n_genuine_unlabelled: genuine comparisons with an unlabelled sample: likewise.
    """

    threshold: float
    discard_requested: np.ndarray
    discard_achieved: np.ndarray
    groups: tuple[GroupErrorCurve, ...]
    n_genuine_all: np.ndarray
    fnmr_all: np.ndarray
    n_images_total: int
    n_nan_images: int
    n_unlabelled_images: int
    n_genuine_total: int
    n_genuine_mixed: int
    n_genuine_unlabelled: int

    def get(self, group: Hashable) -> GroupErrorCurve:
        for g in self.groups:
            if g.group == group:
                return g
        raise ValueError(f"no group {group!r}; have {[g.group for g in self.groups]}")

    def to_dict(self) -> dict:
        out = {}
        for key, value in self.__dict__.items():
            if key == "groups":
                out[key] = [g.to_dict() for g in value]
            elif isinstance(value, np.ndarray):
                out[key] = nan_to_none(value)
            else:
                out[key] = value
        out["mixed_genuine_pairs"] = "excluded from every group"
        return out

    def to_markdown(self, at: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)) -> str:
        """FNMR and share of images discarded per group at the discard fractions ``at`` present."""
        names = [str(g.group) for g in self.groups]
        head = ["discard", "achieved", *[f"FNMR {n}" for n in names], *[f"discarded {n}" for n in names]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for phi in at:
            hit = np.flatnonzero(np.isclose(self.discard_requested, phi, rtol=0, atol=1e-12))
            if not hit.size:
                continue
            j = int(hit[0])
            fnmr = ["n/a" if np.isnan(g.fnmr[j]) else f"{g.fnmr[j]:.4f}" for g in self.groups]
            gone = ["n/a" if np.isnan(g.images_discarded[j]) else f"{g.images_discarded[j]:.4f}" for g in self.groups]
            lines.append(f"| {phi:.2f} | {self.discard_achieved[j]:.4f} | " + " | ".join(fnmr + gone) + " |")
        return "\n".join(lines)


def group_error_rates(
    comparisons: Comparisons,
    groups_of_samples: Sequence[Hashable],
    qualities: np.ndarray,
    threshold: float,
    discard_fractions: Sequence[float] | np.ndarray = DEFAULT_DISCARD_FRACTIONS,
    *,
    order: Sequence[Hashable] | None = None,
) -> GroupErrorRates:
    """Per-group FNMR at a global threshold, and per-group discard shares, versus global discard.

    A genuine comparison belongs to group ``g`` when *both* its samples are
    labelled ``g``.  Genuine comparisons across groups (possible in general,
    e.g. an identity whose images carry different age bins; not for gender on
    LFW, where both images of a genuine pair share the identity's label) and
    those with an unlabelled sample belong to no group: they are counted
    (``n_genuine_mixed``, ``n_genuine_unlabelled``) and enter ``fnmr_all`` only.

    Discarding is global: at fraction ``phi`` the lowest-quality ``phi`` of
    *all* images (every group together; NaN first; whole tie groups, achieved
    ``<=`` requested) leave, and a comparison remains when both its samples
    do (pair quality = min), exactly as :func:`.discard.evrc` on the images axis.
    The threshold stays fixed.  Scores and threshold are compared in float64.

    Args:
        comparisons: the scored comparisons (only the genuine ones are used).
        groups_of_samples: ``n_samples`` labels; ``None`` = unlabelled.
        qualities: ``(n_samples,)`` qualities; NaN = not assessed.
        threshold: the global decision threshold, e.g.
            ``threshold_at_fmr(comparisons.impostor_scores, 1e-3).threshold``.
        discard_fractions: increasing fractions in [0, 1].
        order: group order, as in :func:`group_distributions`.

    Returns:
        :class:`GroupErrorRates`.

    Raises:
        ValueError: no genuine comparison, a non-finite threshold, bad lengths or fractions.
    """
    if not isinstance(comparisons, Comparisons):
        raise TypeError(f"comparisons must be a Comparisons object, got {type(comparisons).__name__}")
    if comparisons.n_genuine == 0:
        raise ValueError("the genuine comparison set is empty: FNMR is undefined")
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(t):
        raise ValueError(f"threshold must be finite, got {threshold!r} (an insufficient FMR threshold is NaN)")
    n = comparisons.n_samples
    q = as_qualities(qualities, n)
    d = check_discard_fractions(discard_fractions)
    labels, codes = _group_index(groups_of_samples, n, order)

    ranks, n_ranks, n_nan = quality_ranks(q)
    cut, achieved = _cutoffs(np.bincount(ranks, minlength=n_ranks), d, n_ranks)

    gp = comparisons.genuine_pairs.astype(np.int64)
    pair_rank = np.minimum(ranks[gp[:, 0]], ranks[gp[:, 1]])
    error = comparisons.genuine_scores.astype(np.float64) < t
    ca, cb = codes[gp[:, 0]], codes[gp[:, 1]]
    unlabelled = (ca < 0) | (cb < 0)
    mixed = ~unlabelled & (ca != cb)
    pair_group = np.where(unlabelled | mixed, -1, ca)

    def remaining(select: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Remaining comparisons and remaining errors among ``select``, at each cut."""
        total = _suffix(np.bincount(pair_rank[select], minlength=n_ranks))
        errors = _suffix(np.bincount(pair_rank[select & error], minlength=n_ranks))
        return total[cut], errors[cut]

    def rate(errors: np.ndarray, total: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, errors / np.maximum(total, 1), np.nan)

    curves = []
    for k, label in enumerate(labels):
        member = codes == k
        n_img = int(member.sum())
        gone = np.concatenate(([0], np.cumsum(np.bincount(ranks[member], minlength=n_ranks))))[cut]
        total, errors = remaining(pair_group == k)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = gone / n_img if n_img else np.full(len(d), np.nan)
        curves.append(GroupErrorCurve(
            label, n_img, int((member & (ranks == 0)).sum()), int((pair_group == k).sum()),
            total.astype(np.int64), errors.astype(np.int64), rate(errors, total),
            gone.astype(np.int64), np.asarray(share, dtype=np.float64),
        ))
    total_all, errors_all = remaining(np.ones(len(gp), dtype=bool))
    return GroupErrorRates(
        t, d, achieved, tuple(curves), total_all.astype(np.int64), rate(errors_all, total_all),
        n, n_nan, int((codes < 0).sum()), len(gp), int(mixed.sum()), int(unlabelled.sum()),
    )
