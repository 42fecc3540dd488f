"""Controlled degradation (issue 21): does a quality score fall, and track recognition, as an image is degraded?

Set-up.  Each probe image is kept clean and copied at five severities of one
factor (blur, noise, JPEG, ... see :mod:`fiqa_bench.faces.degradations`).
A row of the arrays given here is one copy:

* ``severity``: integer in ``0..5``; ``0`` is the clean (untouched) image,
  ``1..5`` the factor's levels from mild to severe;
* ``quality``: the method's quality score of that copy (NaN where the method
  gave none);
* ``probe``: the probe it was made from (any hashable ids: ints, strings);
* ``score``: the genuine comparison score of the copy against a *clean
  reference image of the same person* (a different photo), from the deployed
  recognition model.

Each probe has at most one clean copy in the arrays given (call once per
factor); degraded copies whose probe has no clean copy are left out of the
paired statistics and counted (``n_unpaired``).

Terms follow ISO/IEC 29794-1 (biometric sample quality, framework) and
ISO/IEC 29794-5 (face image data): a *quality score* should predict the
*utility* of a sample, its contribution to recognition performance; a
degradation of a capture-related property (sharpness, noise, exposure,
occlusion, pose ...) lowers utility, so a quality score (unified or a single
quality component) that predicts utility must fall with it.  Controlled
degradation measures this directly, factor by factor, with the ground truth
known by construction.

Three statistics:

1. Monotonicity (:func:`monotonicity`).
   ``spearman``: Spearman's rank correlation ``rho(severity, quality)`` over
   every copy, clean ones included (``scipy.stats.spearmanr``; ties get
   average ranks).  ``clean_higher``: over every pair (clean copy, degraded
   copy) of the same probe,

       clean_higher = ( #{q_clean > q_copy} + 0.5 #{q_clean = q_copy} ) / #pairs

   (ties counted as half, so a constant score gives exactly 0.5, like a coin).
   A good quality score falls with severity: ``spearman`` strongly negative,
   ``clean_higher`` near 1; a score blind to the factor gives ``spearman``
   near 0 and ``clean_higher`` near 0.5.  ``clean_higher`` is a
   within-probe comparison (each probe's own clean image is the baseline), so
   differences in quality *between* probes do not dilute it as they dilute
   ``spearman``.

2. Utility tracking (:func:`utility`).  For each degraded copy ``c`` of a
   probe with clean copy ``0``:

       quality drop  dq = q(0) - q(c),     score drop  ds = s(0) - s(c)

   and ``spearman = rho(dq, ds)`` over those copies.  A quality score is
   useful when its drop tracks recognition's drop: ``spearman`` near +1.

3. Recognition cost (:func:`recognition_cost`).  The decision threshold at a
   target FMR from impostor scores, exactly as in :mod:`.thresholds`
   (accept when ``s >= t``, ``t`` the next float above the ``(k+1)``-th
   highest impostor score), then per severity level ``L``

       FNMR(L) = #{genuine scores of level L with s < t} / #{genuine scores of level L}

   (ISO/IEC 19795-1 false non-match rate): how much the degradation costs
   the deployed model, the effect the quality scores should predict.

NaN handling: a NaN quality or score leaves its copy (or its pair) out of the
statistic it would enter, and the number left out is reported, never hidden.
Spearman's rho is NaN when fewer than two values remain or either variable
is constant (it is undefined there).  No p-values are given: the copies of
one probe are not independent, so the textbook p-value of rho would be too
small; use a bootstrap over probes (:mod:`.bootstrap`) for intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from fiqa_bench.metrics.thresholds import FMRThreshold, threshold_at_fmr

__all__ = ["MAX_SEVERITY", "Monotonicity", "Utility", "RecognitionCost", "monotonicity", "utility",
           "recognition_cost"]

#: Severity levels run ``0`` (clean) to this (most severe).
MAX_SEVERITY = 5


def _none_if_nan(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def _severity(severity: object) -> np.ndarray:
    """``severity`` as a 1-D int64 array of integers in ``0..MAX_SEVERITY``, else ValueError naming the value."""
    arr = np.asarray(severity)
    if arr.ndim != 1:
        raise ValueError(f"severity must be 1-D, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iuf":
        raise TypeError(f"severity must hold integers 0..{MAX_SEVERITY}, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"severity must hold integers 0..{MAX_SEVERITY}, got {arr[i]!r} at index {i}")
    out = arr.astype(np.int64)
    bad = (out < 0) | (out > MAX_SEVERITY)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"severity must be in 0..{MAX_SEVERITY}, got {out[i]} at index {i}")
    return out


def _values(name: str, values: object, n: int) -> np.ndarray:
    """Float64 ``(n,)``; NaN allowed (missing), infinities not."""
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} must have shape ({n},) like severity, got {arr.shape}")
    if arr.size and arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    inf = np.isinf(arr)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise ValueError(f"{name} holds {int(inf.sum())} infinite values (first at index {i}: {arr[i]!r})")
    return arr


def _pairs(severity: np.ndarray, probe: object) -> tuple[np.ndarray, np.ndarray, int]:
    """Indices of (degraded copy, its probe's clean copy) pairs and the number of degraded copies without one.

    Raises ValueError when a probe has more than one clean copy (which would be the baseline is ambiguous).
    """
    ids = np.asarray(probe)
    if ids.ndim != 1 or len(ids) != len(severity):
        raise ValueError(f"probe must have shape ({len(severity)},) like severity, got {ids.shape}")
    names, codes = np.unique(ids, return_inverse=True)
    codes = codes.ravel()
    clean = np.flatnonzero(severity == 0)
    per_probe = np.bincount(codes[clean], minlength=len(names))
    if (per_probe > 1).any():
        j = int(np.flatnonzero(per_probe > 1)[0])
        raise ValueError(f"probe {names[j]!r} has {per_probe[j]} clean copies (severity 0); give exactly one "
                         "per probe (call once per factor)")
    clean_of = np.full(len(names), -1, dtype=np.int64)
    clean_of[codes[clean]] = clean
    degraded = np.flatnonzero(severity > 0)
    partner = clean_of[codes[degraded]]
    paired = partner >= 0
    return degraded[paired], partner[paired], int(np.count_nonzero(~paired))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho of two finite samples; NaN when undefined (fewer than 2 values, or either constant)."""
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(stats.spearmanr(x, y)[0])


@dataclass(frozen=True)
class Monotonicity:
    """Does the quality fall with severity?  See the module docstring.

    Attributes:
        spearman: rho(severity, quality) over the copies with a quality (clean ones included); NaN if undefined.
        n: copies entering ``spearman``.
        n_nan: copies left out for a NaN quality.
        clean_higher: share of (clean, degraded) pairs of one probe where the clean copy's quality is strictly
            higher, ties counted as half; NaN when no pair remains.
        n_pairs: pairs entering ``clean_higher`` (both qualities present).
        n_pairs_nan: pairs left out because either quality is NaN.
        n_unpaired: degraded copies whose probe has no clean copy.
    """

    spearman: float
    n: int
    n_nan: int
    clean_higher: float
    n_pairs: int
    n_pairs_nan: int
    n_unpaired: int

    def to_dict(self) -> dict:
        return {key: _none_if_nan(value) for key, value in self.__dict__.items()}


def monotonicity(severity: np.ndarray, quality: np.ndarray, probe: np.ndarray) -> Monotonicity:
    """Spearman's rho between severity and quality, and the share of pairs where the clean copy scores higher.

    ``clean_higher = (#{q_clean > q_copy} + 0.5 #{q_clean = q_copy}) / #pairs`` over every degraded copy paired
    with its probe's clean copy (ties count half).

    Args:
        severity: ``(M,)`` integers ``0..5``, ``0`` = clean.
        quality: ``(M,)`` quality scores; NaN = no score (left out, counted).
        probe: ``(M,)`` probe ids; at most one clean copy per probe.

    Example:
        >>> r = monotonicity(np.array([0, 1, 2, 0, 1, 2]), np.array([0.9, 0.5, 0.1, 0.8, 0.8, np.nan]),
        ...                  np.array([7, 7, 7, 8, 8, 8]))
        >>> round(r.spearman, 3), r.n_nan, r.clean_higher, r.n_pairs   # 1 + 1 + 0.5 (tie) out of 3 pairs
        (-0.865, 1, 0.833..., 3)
    """
    sev = _severity(severity)
    q = _values("quality", quality, len(sev))
    present = ~np.isnan(q)
    rho = _spearman(sev[present].astype(np.float64), q[present])

    degraded, clean, n_unpaired = _pairs(sev, probe)
    qd, qc = q[degraded], q[clean]
    both = ~np.isnan(qd) & ~np.isnan(qc)
    qd, qc = qd[both], qc[both]
    n_pairs = int(len(qd))
    if n_pairs:
        share = (np.count_nonzero(qc > qd) + 0.5 * np.count_nonzero(qc == qd)) / n_pairs
    else:
        share = float("nan")
    return Monotonicity(rho, int(np.count_nonzero(present)), int(np.count_nonzero(~present)), float(share),
                        n_pairs, int(np.count_nonzero(~both)), n_unpaired)


@dataclass(frozen=True)
class Utility:
    """Does the quality drop track the recognition score's drop?  See the module docstring.

    Attributes:
        spearman: rho(q(clean) - q(copy), s(clean) - s(copy)) over the degraded copies; NaN if undefined.
        n: degraded copies entering ``spearman``.
        n_nan: paired copies left out because a quality or a score of the copy or of its clean copy is NaN.
        n_unpaired: degraded copies whose probe has no clean copy.
    """

    spearman: float
    n: int
    n_nan: int
    n_unpaired: int

    def to_dict(self) -> dict:
        return {key: _none_if_nan(value) for key, value in self.__dict__.items()}


def utility(severity: np.ndarray, quality: np.ndarray, score: np.ndarray, probe: np.ndarray) -> Utility:
    """Spearman's rho between the quality drop and the genuine-score drop from each probe's clean copy.

    ``dq = q(clean) - q(copy)``, ``ds = s(clean) - s(copy)`` per degraded copy; ``rho(dq, ds)``.

    Args:
        severity: ``(M,)`` integers ``0..5``, ``0`` = clean.
        quality: ``(M,)`` quality scores; NaN = none.
        score: ``(M,)`` genuine comparison score of each copy against the clean reference of the same person;
            NaN = none (e.g. no face found).
        probe: ``(M,)`` probe ids; at most one clean copy per probe.

    Example:
        >>> sev, probe = np.array([0, 1, 2, 0, 1, 2]), np.array(["a", "a", "a", "b", "b", "b"])
        >>> r = utility(sev, np.array([9., 7., 2., 5., 4., 1.]), np.array([80., 70., 20., 60., 50., 45.]), probe)
        >>> round(r.spearman, 3), r.n   # dq = 2, 7, 1, 4 and ds = 10, 60, 10, 15: same order but for the tie in ds
        (0.949, 4)
    """
    sev = _severity(severity)
    q = _values("quality", quality, len(sev))
    s = _values("score", score, len(sev))
    degraded, clean, n_unpaired = _pairs(sev, probe)
    dq = q[clean] - q[degraded]
    ds = s[clean] - s[degraded]
    ok = ~np.isnan(dq) & ~np.isnan(ds)
    return Utility(_spearman(dq[ok], ds[ok]), int(np.count_nonzero(ok)), int(np.count_nonzero(~ok)), n_unpaired)


@dataclass(frozen=True)
class RecognitionCost:
    """FNMR of the genuine comparisons per severity level at one threshold from impostor scores.

    Attributes:
        threshold: the :class:`~fiqa_bench.metrics.thresholds.FMRThreshold` used (``.threshold``, achieved
            ``.fmr``, ``.insufficient``).
        levels: ``(0, 1, ..., MAX_SEVERITY)``.
        fnmr: level -> ``#{s < t} / #{scores}``; NaN where the level has no genuine score or the threshold is
            insufficient.
        n_genuine: level -> genuine scores used.
        n_false_non_match: level -> genuine scores below the threshold (0 when the threshold is insufficient).
        n_nan: level -> NaN genuine scores left out.
    """

    threshold: FMRThreshold
    levels: tuple[int, ...]
    fnmr: dict[int, float]
    n_genuine: dict[int, int]
    n_false_non_match: dict[int, int]
    n_nan: dict[int, int]

    def to_dict(self) -> dict:
        return {
            "threshold": self.threshold.to_dict(),
            "levels": list(self.levels),
            "fnmr": {str(k): _none_if_nan(self.fnmr[k]) for k in self.levels},
            "n_genuine": {str(k): v for k, v in self.n_genuine.items()},
            "n_false_non_match": {str(k): v for k, v in self.n_false_non_match.items()},
            "n_nan": {str(k): v for k, v in self.n_nan.items()},
        }


def recognition_cost(
    severity: np.ndarray,
    genuine_score: np.ndarray,
    impostor_scores: np.ndarray,
    fmr: float,
    *,
    min_false_matches: int = 10,
) -> RecognitionCost:
    """FNMR per severity level at the exact threshold for ``fmr`` (:func:`.thresholds.threshold_at_fmr`).

    ``FNMR(L) = #{s < t : severity = L} / #{severity = L}``, accept when ``s >= t`` (equivalently ``s > s*``,
    the ``(k+1)``-th highest impostor score).

    Args:
        severity: ``(M,)`` integers ``0..5`` of the genuine comparisons' copies.
        genuine_score: ``(M,)`` genuine scores (copy against the clean reference); NaN = none (left out, counted).
        impostor_scores: ``(I,)`` finite impostor scores that fix the threshold.
        fmr: target FMR in (0, 1).
        min_false_matches: the threshold is flagged insufficient (and every FNMR NaN) when ``fmr`` allows fewer
            false matches among the impostors than this.

    Example:
        >>> r = recognition_cost(np.array([0, 0, 1, 1, 5]), np.array([.9, .8, .3, .7, .1]),
        ...                      np.array([.1, .2, .3, .4]), 0.25, min_false_matches=1)
        >>> r.threshold.highest_rejected, r.fnmr[0], r.fnmr[1], r.fnmr[5], r.fnmr[2]   # accept s > 0.3
        (0.3, 0.0, 0.5, 1.0, nan)
    """
    sev = _severity(severity)
    g = _values("genuine_score", genuine_score, len(sev))
    thr = threshold_at_fmr(impostor_scores, fmr, min_false_matches=min_false_matches)
    levels = tuple(range(MAX_SEVERITY + 1))
    fnmr: dict[int, float] = {}
    n_genuine: dict[int, int] = {}
    n_fnm: dict[int, int] = {}
    n_nan: dict[int, int] = {}
    for level in levels:
        at = g[sev == level]
        valid = at[~np.isnan(at)]
        n_nan[level] = int(len(at) - len(valid))
        n_genuine[level] = int(len(valid))
        if thr.insufficient or not len(valid):
            n_fnm[level] = 0
            fnmr[level] = float("nan")
        else:
            n_fnm[level] = int(np.count_nonzero(valid <= thr.highest_rejected))
            fnmr[level] = n_fnm[level] / len(valid)
    return RecognitionCost(thr, levels, fnmr, n_genuine, n_fnm, n_nan)
