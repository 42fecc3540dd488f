"""Bootstrap confidence intervals for AOC / pAUC, resampling identities.

Comparisons are not independent: every image takes part in many of them and
every identity in many images, so resampling *pairs* understates the
variance.  Following the subsets bootstrap of Bolle, Ratha and Pankanti
("Error analysis of pattern recognition systems - the subsets bootstrap",
CVIU 2004), each replicate draws ``n_id`` identities with replacement; an
identity drawn ``w`` times contributes its samples with weight ``w``, its
genuine comparisons with weight ``w`` and an impostor comparison between
identities ``a`` and ``b`` with weight ``w_a * w_b`` (exactly what
materialising the copies would give, without the cross-copy pairs of one
person).  The full evaluation (thresholds, discard cut-offs, FNMR) is then
recomputed with these integer weights, which is exact: it equals running
:func:`~fiqa_bench.metrics.discard.evrc` on the materialised replicate.

The interval is the percentile interval of the replicate statistics.
:func:`bootstrap_difference` evaluates two quality arrays on the *same*
replicates (paired), so its interval for ``stat(a) - stat(b)`` is the right
tool to say whether two methods differ: overlapping marginal intervals are
not a test.  Replicates where the statistic is undefined (e.g. too few
impostor comparisons left for the FMR, or FNMR(0) = 0) are counted in
``n_undefined`` and left out.

Cost: one exact evaluation per replicate with a pass over all impostor
comparisons (LFW all-vs-all, 87.5 M comparisons: ~1.7 s per replicate on 2
cores; 2 M subsampled impostors: ~0.15 s).  Use a pair list or impostor
subsampling (:func:`~fiqa_bench.metrics.comparisons.all_vs_all`
``max_impostors``) for thousands of replicates, keeping enough impostors for
the FMR at the largest discard fraction (else every replicate is undefined).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fiqa_bench.metrics._common import (
    AXES,
    POLICIES,
    check_choice,
    check_discard_fractions,
    check_fmr,
    check_min_false_matches,
    nan_to_none,
)
from fiqa_bench.metrics.comparisons import Comparisons
from fiqa_bench.metrics.discard import DEFAULT_DISCARD_FRACTIONS, DiscardCurve, PairQuality, _evaluate, _prepare
from fiqa_bench.metrics.summaries import aoc, edc_pauc

__all__ = ["BootstrapCI", "bootstrap_ci", "bootstrap_difference"]


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile bootstrap interval.

    Attributes:
        statistic: e.g. ``"aoc"`` or ``"pauc"``, with ``" difference"`` for paired differences.
        estimate: the statistic on the full data.
        low, high: interval bounds at ``confidence``.
        confidence: e.g. 0.95.
        n_boot: replicates drawn.
        n_undefined: replicates where the statistic was undefined (left out).
        seed: ``numpy.random.default_rng`` seed.
        resampling: ``"identities"``.
        settings: policy, axis, FMR and statistic options used.
        replicates: ``(n_boot,)`` replicate values (NaN where undefined).
    """

    statistic: str
    estimate: float
    low: float
    high: float
    confidence: float
    n_boot: int
    n_undefined: int
    seed: int
    resampling: str
    settings: dict
    replicates: np.ndarray

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies strictly on one side of 0."""
        return bool(self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "replicates"}
        for key in ("estimate", "low", "high"):
            d[key] = nan_to_none(np.array([d[key]]))[0]
        d["replicates"] = nan_to_none(self.replicates)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> BootstrapCI:
        """Inverse of :meth:`to_dict` (None -> NaN)."""
        fields = dict(d)
        for key in ("estimate", "low", "high"):
            fields[key] = float("nan") if fields[key] is None else float(fields[key])
        fields["replicates"] = np.array([np.nan if v is None else v for v in fields["replicates"]], dtype=np.float64)
        return cls(**fields)

    def to_markdown(self) -> str:
        s = self.settings
        est = "undefined" if np.isnan(self.estimate) else f"{self.estimate:.4f}"
        ci = "undefined" if np.isnan(self.low) else f"[{self.low:.4f}, {self.high:.4f}]"
        return (
            f"| statistic | estimate | {self.confidence:.0%} CI | replicates (undefined) | setting |\n"
            "|---|---|---|---|---|\n"
            f"| {self.statistic} | {est} | {ci} | "
            f"{self.n_boot} ({self.n_undefined}) | {s['policy']}, {s['axis']}, FMR={s['fmr']:g}, "
            f"resampling {self.resampling} |"
        )


def _statistic(curve: DiscardCurve, statistic: str, normalised: bool, pauc_limit: float, subtract_best: bool) -> float:
    try:
        if statistic == "aoc":
            return aoc(curve, normalised=normalised)
        return edc_pauc(curve, pauc_limit, subtract_best=subtract_best)
    except ValueError:
        return float("nan")


def _run(
    comparisons: Comparisons,
    quality_sets: Sequence[np.ndarray],
    *,
    statistic: str,
    fmr: float,
    policy: str,
    axis: str,
    n_boot: int,
    confidence: float,
    seed: int,
    discard_fractions: Sequence[float] | np.ndarray,
    pair_quality: PairQuality,
    normalised: bool,
    pauc_limit: float,
    subtract_best: bool,
    min_false_matches: int,
) -> tuple[np.ndarray, np.ndarray, dict]:
    check_choice("statistic", statistic, ("aoc", "pauc"))
    f = check_fmr(fmr)
    check_choice("policy", policy, POLICIES)
    check_choice("axis", axis, AXES)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if comparisons.identities is None:
        raise ValueError("identity bootstrap needs comparisons.identities (give identities when building them)")
    d = check_discard_fractions(discard_fractions)
    mfm = check_min_false_matches(min_false_matches)
    preps = [_prepare(comparisons, q, axis, pair_quality) for q in quality_sets]
    codes = np.unique(comparisons.identities, return_inverse=True)[1].ravel()
    n_id = int(codes.max()) + 1

    def stat(prep, weights):
        try:
            curve = _evaluate(prep, (f,), (policy,), d, mfm, weights).curves[0]
        except ValueError:  # e.g. no genuine comparison drawn
            return float("nan")
        return _statistic(curve, statistic, normalised, pauc_limit, subtract_best)

    estimates = np.array([stat(p, None) for p in preps])
    rng = np.random.default_rng(seed)
    reps = np.empty((n_boot, len(preps)))
    for b in range(n_boot):
        w_id = np.bincount(rng.integers(0, n_id, n_id), minlength=n_id).astype(np.float64)
        weights = w_id[codes]
        reps[b] = [stat(p, weights) for p in preps]
    settings = {
        "policy": policy, "axis": axis, "fmr": f, "statistic": statistic, "normalised": normalised,
        "pauc_limit": pauc_limit, "subtract_best": subtract_best, "n_identities": n_id,
        "n_discard_points": len(d), "min_false_matches": mfm,
    }
    return estimates, reps, settings


def _interval(name: str, estimate: float, reps: np.ndarray, confidence: float, n_boot: int, seed: int, settings: dict) -> BootstrapCI:
    ok = ~np.isnan(reps)
    if ok.any():
        low, high = np.quantile(reps[ok], [(1 - confidence) / 2, (1 + confidence) / 2])
    else:
        low = high = float("nan")
    return BootstrapCI(name, float(estimate), float(low), float(high), float(confidence), int(n_boot),
                       int((~ok).sum()), int(seed), "identities", settings, reps)


def bootstrap_ci(
    comparisons: Comparisons,
    qualities: np.ndarray,
    *,
    statistic: str = "aoc",
    fmr: float = 1e-3,
    policy: str = "recomputed",
    axis: str = "images",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    discard_fractions: Sequence[float] | np.ndarray = DEFAULT_DISCARD_FRACTIONS,
    pair_quality: PairQuality = "min",
    normalised: bool = True,
    pauc_limit: float = 0.20,
    subtract_best: bool = False,
    min_false_matches: int = 10,
) -> BootstrapCI:
    """Percentile CI of AOC or pAUC under identity resampling.

    Args:
        comparisons: comparisons with ``identities``.
        qualities: ``(n_samples,)`` per-sample qualities.
        statistic: ``"aoc"`` (:func:`~.summaries.aoc`, ``normalised``) or
            ``"pauc"`` (:func:`~.summaries.edc_pauc`, ``pauc_limit``, ``subtract_best``).
        fmr, policy, axis, discard_fractions, pair_quality, min_false_matches: as :func:`~.discard.evrc`.
        n_boot: replicates.
        confidence: interval coverage, e.g. 0.95.
        seed: ``numpy.random.default_rng`` seed (same seed = same replicates).
    """
    est, reps, settings = _run(
        comparisons, [qualities], statistic=statistic, fmr=fmr, policy=policy, axis=axis, n_boot=n_boot,
        confidence=confidence, seed=seed, discard_fractions=discard_fractions, pair_quality=pair_quality,
        normalised=normalised, pauc_limit=pauc_limit, subtract_best=subtract_best, min_false_matches=min_false_matches,
    )
    return _interval(statistic, est[0], reps[:, 0], confidence, n_boot, seed, settings)


def bootstrap_difference(
    comparisons: Comparisons,
    qualities_a: np.ndarray,
    qualities_b: np.ndarray,
    **kwargs: object,
) -> BootstrapCI:
    """Paired percentile CI of ``stat(a) - stat(b)`` on the same identity replicates.

    Keyword arguments as :func:`bootstrap_ci`.  ``excludes_zero`` on the result
    says whether the two quality measures differ at that confidence.
    """
    defaults = dict(
        statistic="aoc", fmr=1e-3, policy="recomputed", axis="images", n_boot=1000, confidence=0.95, seed=0,
        discard_fractions=DEFAULT_DISCARD_FRACTIONS, pair_quality="min", normalised=True, pauc_limit=0.20,
        subtract_best=False, min_false_matches=10,
    )
    unknown = set(kwargs) - set(defaults)
    if unknown:
        raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
    defaults.update(kwargs)
    est, reps, settings = _run(comparisons, [qualities_a, qualities_b], **defaults)  # type: ignore[arg-type]
    return _interval(
        f"{defaults['statistic']} difference", est[0] - est[1], reps[:, 0] - reps[:, 1],
        float(defaults["confidence"]), int(defaults["n_boot"]), int(defaults["seed"]), settings,  # type: ignore[arg-type]
    )
