"""Shared validation and exact counting helpers for the metrics modules (private).

Two conventions are fixed here and used everywhere:

* "Achieved <= requested" is decided in float64: an integer count ``k`` out of
  ``n`` satisfies a target rate ``r`` when ``k / n <= r``.  The largest such
  ``k`` is :func:`allowed_count`.  This avoids both ``floor(0.29 * 100) == 28``
  and any tolerance.
* Qualities are ranked densely, with NaN below everything (``-inf``
  included): rank 0 is the NaN group, ranks ``1..L`` the distinct non-NaN
  values in increasing order.  Every comparison of qualities is then an
  integer comparison of ranks, so any strictly increasing transform of the
  qualities gives identical results.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

POLICIES = ("recomputed", "fixed")
AXES = ("images", "comparisons")


def check_fmr(fmr: object) -> float:
    """``fmr`` as a float in the open interval (0, 1), else ValueError naming it."""
    try:
        value = float(fmr)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"FMR must be a number in (0, 1), got {fmr!r}") from None
    if not (0.0 < value < 1.0):
        raise ValueError(f"FMR must be in the open interval (0, 1), got {fmr!r}")
    return value


def check_fmrs(fmrs: float | Sequence[float]) -> tuple[float, ...]:
    """One or several target FMRs, each validated by :func:`check_fmr`."""
    if np.ndim(fmrs) == 0:
        return (check_fmr(fmrs),)
    values = tuple(check_fmr(f) for f in fmrs)  # type: ignore[union-attr]
    if not values:
        raise ValueError("fmrs is empty; give at least one target FMR")
    return values


def check_choice(name: str, value: object, options: Sequence[str]) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return str(value)


def check_min_false_matches(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"min_false_matches must be a non-negative integer, got {value!r}")
    return int(value)


def as_scores(name: str, scores: object, *, allow_empty: bool = False) -> np.ndarray:
    """A 1-D float32/float64 array of finite scores (float32 kept to save memory)."""
    arr = np.asarray(scores)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} holds {int(bad.sum())} non-finite values (first at index {i}: {arr[i]!r})")
    return arr


def as_qualities(qualities: object, n_samples: int) -> np.ndarray:
    """Per-sample qualities as float64 ``(n_samples,)``; NaN allowed (lowest)."""
    q = np.asarray(qualities)
    if q.ndim != 1:
        raise ValueError(f"qualities must be 1-D, got shape {q.shape}")
    if q.dtype.kind not in "biuf":
        raise TypeError(f"qualities must be numeric, got dtype {q.dtype}")
    if len(q) != n_samples:
        raise ValueError(f"qualities has {len(q)} values but the comparisons have {n_samples} samples")
    return q.astype(np.float64, copy=False)


def check_discard_fractions(values: object) -> np.ndarray:
    d = np.asarray(values, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"discard_fractions must be a non-empty 1-D sequence, got shape {d.shape}")
    if not np.all(np.isfinite(d)) or d.min() < 0.0 or d.max() > 1.0:
        raise ValueError(f"discard_fractions must lie in [0, 1], got min {d.min()!r}, max {d.max()!r}")
    if np.any(np.diff(d) <= 0):
        i = int(np.flatnonzero(np.diff(d) <= 0)[0])
        raise ValueError(f"discard_fractions must be strictly increasing, got {d[i]!r} then {d[i + 1]!r}")
    return d


def allowed_count(rate: float | np.ndarray, n: float | np.ndarray) -> np.ndarray:
    """Largest integer ``k`` with ``k / n <= rate`` (float64), elementwise.

    ``n`` may be a float array holding integers (weighted counts).  For ``n == 0``
    the result is 0.
    """
    rate = np.asarray(rate, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    k = np.floor(rate * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where((n > 0) & ((k + 1) / n <= rate), k + 1, k)
        k = np.where((n > 0) & (k / n > rate), k - 1, k)
    return np.where(n > 0, k, 0.0)


def quality_ranks(q: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Dense ranks of ``q`` with NaN lowest.

    Returns:
        ``(ranks, n_ranks, n_nan)``: ``ranks`` int32 with 0 for NaN and
        ``1..L`` for the distinct other values in increasing order;
        ``n_ranks = L + 1``; ``n_nan`` the number of NaN values.
    """
    nan = np.isnan(q)
    ranks = np.zeros(len(q), dtype=np.int32)
    values, inverse = np.unique(q[~nan], return_inverse=True)
    ranks[~nan] = inverse.ravel() + 1
    return ranks, len(values) + 1, int(nan.sum())


def threshold_from_rejected(score: float, dtype: np.dtype | type = np.float64) -> float:
    """The next value above ``score`` representable in the scores' ``dtype``.

    Accepting ``s >= t`` then means ``s > score`` whether the scores are compared
    in their own dtype (NumPy 2 compares a float32 array with a Python float in
    float32) or in float64.
    """
    dt = np.dtype(dtype)
    return float(np.nextafter(dt.type(score), dt.type(np.inf)))


def nan_to_none(values: np.ndarray) -> list:
    """A JSON-safe list (NaN -> None, numpy scalars -> Python)."""
    out = []
    for v in np.asarray(values).tolist():
        out.append(None if isinstance(v, float) and math.isnan(v) else v)
    return out
