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

Cost: one exact evaluation per replicate and quality measure, every policy
and FMR at once (:func:`bootstrap_replicates`).  On a complete all-vs-all
set the impostor counts come from the samples alone
(:mod:`~fiqa_bench.metrics.discard`), so a replicate costs a pass over the
genuine comparisons and the top-scoring impostors, not over all of them
(times in BENCHMARKS.md).  On a pair list or a subsample every replicate
passes over all impostors given.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

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
from fiqa_bench.metrics.discard import (
    DEFAULT_DISCARD_FRACTIONS,
    DiscardCurve,
    PairQuality,
    _evaluate,
    _prepare,
    _Prepared,
)
from fiqa_bench.metrics.summaries import aoc, edc_pauc

__all__ = ["BootstrapCI", "BootstrapReplicates", "bootstrap_ci", "bootstrap_difference", "bootstrap_replicates"]


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


@dataclass(frozen=True)
class BootstrapReplicates:
    """Statistics of several quality measures on the *same* identity replicates, for every (policy, FMR).

    Attributes:
        statistic: ``"aoc"`` or ``"pauc"``.
        policies, fmrs: the curves evaluated.
        estimates: ``(M, P, F)`` the statistic of each quality measure on the full data.
        replicates: ``(n_boot, M, P, F)`` its value on each replicate (NaN where undefined).
        seed: ``numpy.random.default_rng`` seed of the replicates.
        settings: axis, statistic options, number of identities and points.
    """

    statistic: str
    policies: tuple[str, ...]
    fmrs: tuple[float, ...]
    estimates: np.ndarray
    replicates: np.ndarray
    seed: int
    settings: dict

    def to_dict(self) -> dict:
        """JSON-ready (NaN -> None); :meth:`from_dict` inverts it exactly."""
        return {"statistic": self.statistic, "policies": list(self.policies), "fmrs": list(self.fmrs),
                "estimates_shape": list(self.estimates.shape), "replicates_shape": list(self.replicates.shape),
                "estimates": nan_to_none(self.estimates.ravel()), "replicates": nan_to_none(self.replicates.ravel()),
                "seed": self.seed, "settings": self.settings}

    @classmethod
    def from_dict(cls, d: dict) -> BootstrapReplicates:
        def array(values: list, shape: list) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64).reshape(shape)

        return cls(d["statistic"], tuple(d["policies"]), tuple(float(f) for f in d["fmrs"]),
                   array(d["estimates"], d["estimates_shape"]), array(d["replicates"], d["replicates_shape"]),
                   int(d["seed"]), dict(d["settings"]))

    @classmethod
    def concatenate(cls, parts: Sequence[BootstrapReplicates]) -> BootstrapReplicates:
        """Consecutive pieces of one run (same seed, settings and measures) as the whole run."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for part in parts[1:]:
            if (part.statistic, part.policies, part.fmrs, part.seed, part.settings) != (
                    first.statistic, first.policies, first.fmrs, first.seed, first.settings) or \
                    not np.array_equal(part.estimates, first.estimates, equal_nan=True):
                raise ValueError("bootstrap pieces of different runs cannot be concatenated")
        return cls(first.statistic, first.policies, first.fmrs, first.estimates,
                   np.concatenate([p.replicates for p in parts]), first.seed, first.settings)

    def _at(self, policy: str, fmr: float) -> tuple[int, int]:
        try:
            return self.policies.index(policy), self.fmrs.index(float(fmr))
        except ValueError:
            raise ValueError(f"no replicates for policy={policy!r}, fmr={fmr!r}; have policies "
                             f"{self.policies} and FMRs {self.fmrs}") from None

    def _settings(self, policy: str, fmr: float) -> dict:
        return {"policy": policy, "fmr": float(fmr), **self.settings}

    def interval(self, index: int, policy: str, fmr: float, confidence: float = 0.95) -> BootstrapCI:
        """Percentile interval of quality measure ``index``'s statistic at (policy, FMR)."""
        p, f = self._at(policy, fmr)
        return _interval(self.statistic, self.estimates[index, p, f], self.replicates[:, index, p, f], confidence,
                         len(self.replicates), self.seed, self._settings(policy, fmr))

    def difference(self, a: int, b: int, policy: str, fmr: float, confidence: float = 0.95) -> BootstrapCI:
        """Paired percentile interval of ``stat(a) - stat(b)`` at (policy, FMR)."""
        p, f = self._at(policy, fmr)
        return _interval(f"{self.statistic} difference", self.estimates[a, p, f] - self.estimates[b, p, f],
                         self.replicates[:, a, p, f] - self.replicates[:, b, p, f], confidence, len(self.replicates),
                         self.seed, self._settings(policy, fmr))


def bootstrap_replicates(
    comparisons: Comparisons,
    quality_sets: Sequence[np.ndarray],
    *,
    statistic: str = "aoc",
    fmrs: Sequence[float] = (1e-3,),
    policies: Sequence[str] = ("recomputed",),
    axis: str = "images",
    n_boot: int = 1000,
    seed: int = 0,
    discard_fractions: Sequence[float] | np.ndarray = DEFAULT_DISCARD_FRACTIONS,
    pair_quality: PairQuality = "min",
    normalised: bool = True,
    pauc_limit: float = 0.20,
    subtract_best: bool = False,
    min_false_matches: int = 10,
    progress: Callable[[int], None] | None = None,
    start: int = 0,
    estimates: np.ndarray | None = None,
) -> BootstrapReplicates:
    """Draw ``n_boot`` identity replicates once and evaluate every quality set on each (paired).

    Replicate ``b`` draws ``n_id`` identities with replacement (the same
    stream as :func:`bootstrap_ci` with this ``seed``); every quality set is
    evaluated with those weights, all policies and FMRs in one evaluation.
    ``start`` skips the first replicates of the stream (drawn, not
    evaluated): the replicates ``start .. start + n_boot - 1`` of a longer
    run, so a long bootstrap can be computed, and checkpointed, in pieces
    (:meth:`BootstrapReplicates.concatenate`).  ``estimates``, shape
    ``(M, P, F)``: the statistic on the full data when the caller has it
    already (a study has its EVRC), else computed here.  ``progress`` is
    called with the number of finished replicates.
    """
    check_choice("statistic", statistic, ("aoc", "pauc"))
    fmrs = tuple(check_fmr(f) for f in fmrs)
    policies = tuple(check_choice("policy", p, POLICIES) for p in policies)
    check_choice("axis", axis, AXES)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if comparisons.identities is None:
        raise ValueError("identity bootstrap needs comparisons.identities (give identities when building them)")
    d = check_discard_fractions(discard_fractions)
    mfm = check_min_false_matches(min_false_matches)
    preps = [_prepare(comparisons, q, axis, pair_quality) for q in quality_sets]
    codes = np.unique(comparisons.identities, return_inverse=True)[1].ravel()
    n_id = int(codes.max()) + 1

    def stats(prep: _Prepared, weights: np.ndarray | None) -> np.ndarray:
        out = np.full((len(policies), len(fmrs)), np.nan)
        try:
            result = _evaluate(prep, fmrs, policies, d, mfm, weights)
        except ValueError:  # e.g. no genuine comparison drawn
            return out
        for i, policy in enumerate(policies):
            for j, f in enumerate(fmrs):
                out[i, j] = _statistic(result.get(policy, f), statistic, normalised, pauc_limit, subtract_best)
        return out

    shape = (len(preps), len(policies), len(fmrs))
    if estimates is None:
        estimates = np.stack([stats(p, None) for p in preps])
    elif np.shape(estimates) != shape:
        raise ValueError(f"estimates must have shape {shape}, got {np.shape(estimates)}")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise ValueError(f"start must be a non-negative integer, got {start!r}")
    rng = np.random.default_rng(seed)
    for _ in range(start):
        rng.integers(0, n_id, n_id)  # the skipped replicates' draws keep the stream aligned
    reps = np.empty((n_boot, *shape))
    for b in range(n_boot):
        w_id = np.bincount(rng.integers(0, n_id, n_id), minlength=n_id).astype(np.float64)
        weights = w_id[codes]
        reps[b] = np.stack([stats(p, weights) for p in preps])
        if progress is not None:
            progress(b + 1)
    settings = {
        "axis": axis, "statistic": statistic, "normalised": normalised, "pauc_limit": pauc_limit,
        "subtract_best": subtract_best, "n_identities": n_id, "n_discard_points": len(d), "min_false_matches": mfm,
    }
    return BootstrapReplicates(statistic, policies, fmrs, np.asarray(estimates, dtype=np.float64), reps, int(seed),
                               settings)


def _interval(name: str, estimate: float, reps: np.ndarray, confidence: float, n_boot: int, seed: int,
              settings: dict) -> BootstrapCI:
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    ok = ~np.isnan(reps)
    if ok.any():
        low, high = np.quantile(reps[ok], [(1 - confidence) / 2, (1 + confidence) / 2])
    else:
        low = high = float("nan")
    return BootstrapCI(name, float(estimate), float(low), float(high), float(confidence), int(n_boot),
                       int((~ok).sum()), int(seed), "identities", settings, np.array(reps, dtype=np.float64))


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
    if not (0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    result = bootstrap_replicates(
        comparisons, [qualities], statistic=statistic, fmrs=(fmr,), policies=(policy,), axis=axis, n_boot=n_boot,
        seed=seed, discard_fractions=discard_fractions, pair_quality=pair_quality, normalised=normalised,
        pauc_limit=pauc_limit, subtract_best=subtract_best, min_false_matches=min_false_matches,
    )
    return result.interval(0, policy, fmr, confidence)


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
    options = dict(kwargs)
    fmr, policy = options.pop("fmr", 1e-3), options.pop("policy", "recomputed")
    confidence = options.pop("confidence", 0.95)
    if not (0.0 < float(confidence) < 1.0):  # type: ignore[arg-type]
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    known = set(inspect.signature(bootstrap_replicates).parameters) - {"comparisons", "quality_sets", "fmrs",
                                                                        "policies", "progress"}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
    result = bootstrap_replicates(comparisons, [qualities_a, qualities_b], fmrs=(fmr,), policies=(policy,),
                                  **options)  # type: ignore[arg-type]
    return result.difference(0, 1, policy, fmr, confidence)  # type: ignore[arg-type]
