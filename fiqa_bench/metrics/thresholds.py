"""Exact decision thresholds at a target FMR, TAR@FMR and the ROC.

Decision rule: a comparison is *accepted* (declared a match) when its
similarity score ``s >= t``.  With impostor scores ``S^N`` and genuine scores
``S^P`` (SDD-FIQA Eq. 1-2, which leave ``s == t`` undecided; here ties at
``t`` are accepted):

    FMR(t)  = |{s in S^N : s >= t}| / |S^N|
    FNMR(t) = |{s in S^P : s <  t}| / |S^P|,     TAR(t) = 1 - FNMR(t)

Threshold at a target FMR ``f``: let ``k`` be the largest integer with
``k / |S^N| <= f`` (decided in float64) and ``s*`` the ``(k+1)``-th highest
impostor score.  Every ``t > s*`` gives ``FMR(t) <= k / |S^N| <= f`` and
``t <= s*`` gives more than ``k`` false matches, so the lowest admissible
threshold is the smallest float above ``s*``::

    t = nextafter(s*, +inf),    i.e. accept  <=>  s > s*

(``nextafter`` in the dtype of the impostor scores, float32 or float64, so the
rule holds however the scores are compared)
computed exactly from the scores (an order statistic; no interpolation, no
nearest ROC point).  Impostor scores tied with ``s*`` are all rejected, so
ties can only make the achieved FMR *lower* than the target, never higher
(as in bob.measure's ``far_threshold``).

When the target allows fewer than ``min_false_matches`` (default 10) false
matches, i.e. ``|S^N| < ~10 / f``, the threshold is not determined by the
data: the result is flagged ``insufficient`` and carries NaN instead of a
number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fiqa_bench.metrics._common import (
    allowed_count,
    as_scores,
    check_fmr,
    check_min_false_matches,
    nan_to_none,
    threshold_from_rejected,
)

__all__ = ["FMRThreshold", "TARAtFMR", "ROC", "false_matches_allowed", "threshold_at_fmr", "tar_at_fmr", "roc"]


@dataclass(frozen=True)
class FMRThreshold:
    """The exact threshold at a target FMR (accept if ``score >= threshold``).

    Attributes:
        fmr_target: the requested FMR.
        threshold: next representable value above ``highest_rejected`` (in the scores'
            dtype); NaN if insufficient.
        highest_rejected: the ``(k+1)``-th highest impostor score ``s*``; NaN if insufficient.
        n_false_matches: impostor comparisons accepted at ``threshold``.
        fmr: achieved FMR, ``n_false_matches / n_impostor`` (``<= fmr_target``).
        n_impostor: impostor comparisons used.
        allowed_false_matches: ``k``, the most false matches the target allows.
        insufficient: True when ``k < min_false_matches``.
        min_false_matches: the sufficiency requirement used.
    """

    fmr_target: float
    threshold: float
    highest_rejected: float
    n_false_matches: int
    fmr: float
    n_impostor: int
    allowed_false_matches: int
    insufficient: bool
    min_false_matches: int

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        for key in ("threshold", "highest_rejected", "fmr"):
            d[key] = nan_to_none(np.array([d[key]]))[0]
        return d


def false_matches_allowed(fmr: float, n_impostor: int) -> int:
    """``k``: the most false matches a threshold at ``fmr`` may let through among ``n_impostor`` impostor
    comparisons, the largest integer with ``k / n_impostor <= fmr`` (3 at FMR 1e-3 among LFW View 2's 3,000
    impostor pairs: such a threshold is the 4th highest impostor score).

    >>> false_matches_allowed(1e-3, 3000), false_matches_allowed(1e-4, 3000)
    (3, 0)
    """
    return int(allowed_count(check_fmr(fmr), n_impostor))


def threshold_at_fmr(impostor_scores: np.ndarray, fmr: float, *, min_false_matches: int = 10) -> FMRThreshold:
    """The lowest threshold whose achieved FMR does not exceed ``fmr``.

    Args:
        impostor_scores: ``(I,)`` finite similarity scores of impostor comparisons.
        fmr: target FMR in (0, 1).
        min_false_matches: flag the result insufficient when the target allows
            fewer false matches than this (``I * fmr < ~10``).

    Returns:
        :class:`FMRThreshold`.

    Example:
        >>> r = threshold_at_fmr(np.array([0.1, 0.2, 0.2, 0.3]), 0.5, min_false_matches=1)
        >>> r.highest_rejected, r.n_false_matches, r.fmr   # ties at 0.2 both rejected
        (0.2, 1, 0.25)
    """
    f = check_fmr(fmr)
    mfm = check_min_false_matches(min_false_matches)
    s = as_scores("impostor_scores", impostor_scores)
    n = len(s)
    k = int(allowed_count(f, n))
    if k < mfm:
        return FMRThreshold(f, float("nan"), float("nan"), 0, float("nan"), n, k, True, mfm)
    rejected = np.partition(s, n - k - 1)[n - k - 1]  # (k+1)-th highest
    n_fm = int(np.count_nonzero(s > rejected))
    return FMRThreshold(f, threshold_from_rejected(rejected, s.dtype), float(rejected), n_fm, n_fm / n, n, k, False, mfm)


@dataclass(frozen=True)
class TARAtFMR:
    """TAR (= 1 - FNMR) at the exact threshold for a target FMR.

    Attributes:
        threshold: the :class:`FMRThreshold` used.
        tar: ``|{genuine >= t}| / n_genuine``; NaN if the threshold is insufficient.
        fnmr: ``1 - tar``.
        n_genuine: genuine comparisons used.
    """

    threshold: FMRThreshold
    tar: float
    fnmr: float
    n_genuine: int

    @property
    def insufficient(self) -> bool:
        return self.threshold.insufficient

    def to_dict(self) -> dict:
        return {
            "tar": nan_to_none(np.array([self.tar]))[0],
            "fnmr": nan_to_none(np.array([self.fnmr]))[0],
            "n_genuine": self.n_genuine,
            **self.threshold.to_dict(),
        }

    def to_markdown(self) -> str:
        t = self.threshold
        value = "insufficient comparisons" if t.insufficient else f"{self.tar:.4f}"
        return (
            "| FMR target | TAR | achieved FMR | threshold | genuine | impostor |\n"
            "|---|---|---|---|---|---|\n"
            f"| {t.fmr_target:g} | {value} | {t.fmr:.3g} | {t.threshold:.6g} | {self.n_genuine} | {t.n_impostor} |"
        )


def tar_at_fmr(
    genuine_scores: np.ndarray, impostor_scores: np.ndarray, fmr: float, *, min_false_matches: int = 10
) -> TARAtFMR:
    """TAR at the exact threshold for ``fmr`` (see module docstring).

    Args:
        genuine_scores: ``(G,)`` finite scores of genuine comparisons, G >= 1.
        impostor_scores: ``(I,)`` finite scores of impostor comparisons.
        fmr: target FMR in (0, 1).
        min_false_matches: sufficiency requirement, see :func:`threshold_at_fmr`.

    Example:
        >>> g, i = np.array([0.2, 0.25, 0.5, 0.9]), np.array([0.1, 0.2, 0.2, 0.3])
        >>> r = tar_at_fmr(g, i, 0.5, min_false_matches=1)
        >>> r.tar, r.threshold.fmr   # accept s > 0.2: the impostors tied at 0.2 are rejected, so is the genuine 0.2
        (0.75, 0.25)
    """
    g = as_scores("genuine_scores", genuine_scores)
    thr = threshold_at_fmr(impostor_scores, fmr, min_false_matches=min_false_matches)
    if thr.insufficient:
        return TARAtFMR(thr, float("nan"), float("nan"), len(g))
    tar = int(np.count_nonzero(g > thr.highest_rejected)) / len(g)
    return TARAtFMR(thr, tar, 1.0 - tar, len(g))


@dataclass(frozen=True)
class ROC:
    """Every operating point of the rule ``accept if s >= t``.

    Attributes:
        thresholds: ``(K+1,)`` decreasing: ``+inf`` (accept nothing), then each
            distinct score of either set.
        fmr: ``(K+1,)`` ``|{impostor >= t}| / I``.
        tar: ``(K+1,)`` ``|{genuine >= t}| / G``.
        n_genuine, n_impostor: comparisons used.
    """

    thresholds: np.ndarray
    fmr: np.ndarray
    tar: np.ndarray
    n_genuine: int
    n_impostor: int

    @property
    def fnmr(self) -> np.ndarray:
        return 1.0 - self.tar

    def to_dict(self) -> dict:
        return {
            "thresholds": nan_to_none(np.where(np.isinf(self.thresholds), np.nan, self.thresholds)),
            "fmr": self.fmr.tolist(),
            "tar": self.tar.tolist(),
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
        }


def roc(genuine_scores: np.ndarray, impostor_scores: np.ndarray) -> ROC:
    """The exact ROC (no interpolation, every distinct score a threshold).

    Equals ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=False)``
    with genuine = positive class.

    Example:
        >>> r = roc(np.array([0.9, 0.5]), np.array([0.5, 0.1]))
        >>> r.thresholds.tolist(), r.fmr.tolist(), r.tar.tolist()   # at t = 0.5 both scores of 0.5 are accepted
        ([inf, 0.9, 0.5, 0.1], [0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0])
    """
    g = as_scores("genuine_scores", genuine_scores).astype(np.float64)
    i = as_scores("impostor_scores", impostor_scores).astype(np.float64)
    thresholds = np.unique(np.concatenate([g, i]))[::-1]
    # count of scores >= t, for each t, via the ascending sorted arrays
    n_g = len(g) - np.searchsorted(np.sort(g), thresholds, side="left")
    n_i = len(i) - np.searchsorted(np.sort(i), thresholds, side="left")
    return ROC(
        np.concatenate(([np.inf], thresholds)),
        np.concatenate(([0.0], n_i / len(i))),
        np.concatenate(([0.0], n_g / len(g))),
        len(g),
        len(i),
    )
