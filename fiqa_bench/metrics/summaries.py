"""Scalar summaries of error-versus-discard curves: AOC (SDD-FIQA Eq. 13) and EDC pAUC.

AOC.  The paper defines (Sec. 4.1, Eq. 13)

    AOC = 1 - integral_a^b g(phi) d phi,    a = 0, b = 0.95,

with ``g`` "the FNMR at phi" and ``phi`` the ratio of unconsidered images.
Read literally (``g = FNMR``), every method would score about
``1 - 0.95 * FNMR(0)``: at FMR 1e-2 with FNMR(0) of a few percent, all
values would lie near 0.97, none could be negative, and a useless quality
measure would score as high as a perfect one.  Yet Table 1 and 4 report
BRISQUE 0.0321, BLIINDS-II -0.0065 and SDD-FIQA 0.8284.  Those values are
only possible if ``g`` is the FNMR *relative to its value at zero discard*
and the integral is divided by the interval length:

    AOC_rel = 1 - 1/(b - a) * integral_a^b FNMR(phi) / FNMR(a) d phi

so that a random quality (flat EVRC, ``g = 1``) scores about 0, a quality
whose discards make FNMR *rise* scores below 0 (BLIINDS-II's -0.0065), and a
perfect quality (FNMR falls to 0 almost at once) approaches 1.  This is the
paper-compatible AOC (``normalised=True``, default).  ``normalised=False``
gives the literal Eq. 13, ``1 - integral FNMR``, and :func:`fnmr_area` the
plain area.  The integral uses the trapezoidal rule over the curve's sampled
discard fractions (the 96 points 0, 0.01, ..., 0.95 by default), as
``sklearn.metrics.auc`` does in the public EVRC scripts.

EDC pAUC (ISO/IEC 29794-1 EDC; Olsen et al., "Finger image quality
assessment features - definitions and evaluation", IET Biometrics 2016;
dasec/quality-assessment-evaluation ``compute_edc_pauc``): the area under the
EDC step curve up to a discard limit (default 0.20), each error fraction held
until the next point.  ``subtract_best=True`` subtracts the area under the
theoretical best curve ``max(0, e0 - phi)``, ``e0`` the error at zero discard.
On an :class:`EDCSteps` curve the step rule is exact; on a sampled
:class:`DiscardCurve` it is applied to the sampled points.
"""

from __future__ import annotations

import numpy as np

from fiqa_bench.metrics.curves import DiscardCurve, EDCSteps

__all__ = ["aoc", "fnmr_area", "edc_pauc", "edc_theoretical_best_area"]


def _segment(curve: DiscardCurve, lower: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(curve, DiscardCurve):
        raise TypeError(f"expected a DiscardCurve, got {type(curve).__name__}")
    if not (0.0 <= lower < upper <= 1.0):
        raise ValueError(f"need 0 <= lower < upper <= 1, got lower={lower!r}, upper={upper!r}")
    d = curve.discard_requested
    for bound in (lower, upper):
        if not np.any(np.isclose(d, bound, rtol=0, atol=1e-12)):
            raise ValueError(f"the curve has no point at discard fraction {bound!r}; sample it there")
    sel = (d >= lower - 1e-12) & (d <= upper + 1e-12)
    x, y = d[sel], curve.fnmr[sel]
    bad = curve.insufficient[sel] | np.isnan(y)
    if bad.any():
        phi = float(x[np.flatnonzero(bad)[0]])
        why = "insufficient impostor comparisons for the FMR" if curve.insufficient[sel][bad][0] else "no genuine comparisons remain"
        raise ValueError(
            f"FNMR undefined at discard fraction {phi:g} ({why}; {curve.label}); "
            "the summary would be a silent wrong number"
        )
    return x, y


def fnmr_area(curve: DiscardCurve, *, lower: float = 0.0, upper: float = 0.95) -> float:
    """The unnormalised area ``integral_lower^upper FNMR(phi) d phi`` (trapezoidal rule)."""
    x, y = _segment(curve, lower, upper)
    return float(np.trapezoid(y, x))


def aoc(curve: DiscardCurve, *, normalised: bool = True, lower: float = 0.0, upper: float = 0.95) -> float:
    """Area over the EVRC (SDD-FIQA Eq. 13), paper-compatible by default.

    Args:
        curve: a :class:`DiscardCurve` sampled at ``lower`` and ``upper`` (and between).
        normalised: True: ``1 - mean over [lower, upper] of FNMR(phi) / FNMR(lower)``
            (random quality ~ 0, perfect ~ 1; reproduces the paper's value range);
            False: literal ``1 - integral FNMR``.
        lower, upper: integration bounds; the paper uses 0 and 0.95.

    Raises:
        ValueError: if FNMR is undefined (insufficient impostors, no genuine left)
            anywhere in the interval, or ``normalised`` and ``FNMR(lower) == 0``.

    Example:
        >>> from fiqa_bench.metrics.comparisons import all_vs_all
        >>> from fiqa_bench.metrics.discard import evrc
        >>> rng = np.random.default_rng(1)
        >>> c = all_vs_all(rng.normal(size=(60, 4)), np.repeat(np.arange(20), 3))
        >>> flat = evrc(c, np.zeros(60), fmrs=0.05, policies="fixed").curves[0]
        >>> abs(aoc(flat)) < 1e-12   # a constant quality discards nothing: AOC 0 (up to rounding)
        True
    """
    x, y = _segment(curve, lower, upper)
    if not normalised:
        return float(1.0 - np.trapezoid(y, x))
    if y[0] == 0:
        raise ValueError(f"FNMR at discard fraction {lower:g} is 0 ({curve.label}); the relative AOC is undefined")
    return float(1.0 - np.trapezoid(y / y[0], x) / (upper - lower))


def aoc_or_nan(curve: DiscardCurve, **kwargs: object) -> float:
    """:func:`aoc`, or NaN where it is undefined (for tables and bootstrap replicates)."""
    try:
        return aoc(curve, **kwargs)  # type: ignore[arg-type]
    except ValueError:
        return float("nan")


def edc_theoretical_best_area(starting_error: float, limit: float) -> float:
    """Area under ``max(0, e0 - phi)`` for ``phi`` in ``[0, limit]`` (``e0`` = error at zero discard)."""
    e0 = float(starting_error)
    area = e0 * e0 / 2.0
    if limit < e0:
        area -= (e0 - limit) ** 2 / 2.0
    return area


def edc_pauc(curve: DiscardCurve | EDCSteps, limit: float = 0.20, *, subtract_best: bool = False) -> float:
    """Partial area under an EDC (step rule) from discard fraction 0 to ``limit``.

    Args:
        curve: an exact :class:`EDCSteps` curve, or a sampled :class:`DiscardCurve`
            (its FNMR, on its sampled points; must start at 0 and reach ``limit``).
        limit: upper discard fraction in [0, 1]; default 0.20.
        subtract_best: subtract :func:`edc_theoretical_best_area`.
    """
    limit = float(limit)
    if not (0.0 <= limit <= 1.0):
        raise ValueError(f"limit must be in [0, 1], got {limit!r}")
    if isinstance(curve, EDCSteps):
        d, e = curve.discard_fractions, curve.error_fractions
    elif isinstance(curve, DiscardCurve):
        if curve.discard_requested[0] != 0.0 or curve.discard_requested[-1] < limit - 1e-12:
            raise ValueError(
                f"the curve covers discard fractions [{curve.discard_requested[0]:g}, "
                f"{curve.discard_requested[-1]:g}], which must include [0, {limit:g}]"
            )
        sel = curve.discard_requested <= limit + 1e-12
        d, e = curve.discard_requested[sel], curve.fnmr[sel]
        bad = curve.insufficient[sel] | np.isnan(e)
        if bad.any():
            raise ValueError(f"FNMR undefined at discard fraction {d[np.flatnonzero(bad)[0]]:g} ({curve.label})")
    else:
        raise TypeError(f"expected EDCSteps or DiscardCurve, got {type(curve).__name__}")
    if limit == 0.0:
        area = 0.0
    else:
        inside = d < limit
        right = np.minimum(np.append(d[1:], limit), limit)[inside]
        area = float(np.sum(e[inside] * (right - d[inside])))
    if subtract_best:
        area -= edc_theoretical_best_area(e[0], limit)
    return area
