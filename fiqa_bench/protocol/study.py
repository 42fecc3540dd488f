"""EVRC studies of one or several quality measures: curves, AOC, paired bootstrap intervals, random band.

Given the comparisons of a deployed recognition model (every image with
every other, or a :class:`PairList`: only the listed pairs, genuine as the
list says) and per-image qualities of one or more measures,
:func:`run_studies` computes

* the EVRC for every FMR and threshold policy (``fiqa_bench.metrics.evrc``,
  images axis: the paper's "ratio of unconsidered images"), per measure,
* the paper-compatible AOC of each (SDD-FIQA Eq. 13, FNMR relative to zero
  discard, see :mod:`fiqa_bench.metrics.summaries`),
* percentile bootstrap intervals of each AOC, resampling identities
  (:func:`fiqa_bench.metrics.bootstrap_replicates`, on all comparisons),
  and, with several measures, the paired interval of every difference of
  two measures' AOCs on the *same* replicates: whether one beats the other
  at 95% confidence,
* the **random band**: the same AOCs for ``random_seeds`` uniformly random
  qualities.  On LFW a random quality's AOC varies a lot from seed to seed
  (most genuine pairs belong to a few people), so a measure's AOC means
  something only against this band; the study reports whether it lies
  above the band's 95th percentile.  The band depends on the comparisons
  and the settings only, so every measure shares it.

With a ``checkpoint_dir`` each finished random-band seed and each finished
step of the bootstrap (:data:`BOOTSTRAP_CHUNK` resamples) is kept (:class:`fiqa_bench.pipeline.cache.StepStore`, keyed by a digest
of what it depends on: the band by the embeddings, identities and settings,
the bootstrap by the qualities as well), so a second run, a run of another
method on the same data, or a run resumed after an interruption recomputes
only what is missing, with identical results.  The bootstrap's steps are
independent: with ``workers`` > 1 (a run's ``--workers``, by default the CPU
count) forked processes compute them side by side, the same replicates.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from fiqa_bench.pipeline.cache import StepStore
from fiqa_bench.metrics import (
    BootstrapCI,
    BootstrapReplicates,
    Comparisons,
    EVRCResult,
    all_vs_all,
    bootstrap_replicates,
    comparisons_from_pairs,
    evrc,
)
from fiqa_bench.metrics.summaries import aoc_or_nan

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class StudyConfig:
    """Settings of an EVRC study (defaults: the paper's FMRs, both policies)."""

    fmrs: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    policies: tuple[str, ...] = ("recomputed", "fixed")
    axis: str = "images"
    random_seeds: int = 20
    n_boot: int = 100
    confidence: float = 0.95
    seed: int = 0
    min_false_matches: int = 10

    def __post_init__(self) -> None:
        if self.min_false_matches < 1:
            raise ValueError(f"min_false_matches must be >= 1, got {self.min_false_matches}")
        if self.random_seeds < 2:
            raise ValueError(f"random_seeds must be >= 2 to give a band, got {self.random_seeds}")
        if self.n_boot < 0:
            raise ValueError(f"n_boot must be >= 0, got {self.n_boot}")


@dataclass
class Study:
    """What a study found for one quality measure.

    Attributes:
        label: the quality measure's name.
        config: the settings.
        curves: the EVRC of the measure.
        aoc: (policy, FMR) -> paper-compatible AOC (NaN where undefined).
        ci: (policy, FMR) -> bootstrap interval (absent when ``n_boot == 0``).
        random_aoc: (policy, FMR) -> ``(random_seeds,)`` AOCs of random qualities.
        random_fnmr: (policy, FMR) -> ``(random_seeds, P)`` FNMR curves of random qualities.
        n_nan_qualities: images without a quality (discarded first).
        comparisons: counts and sampling of the comparisons.
    """

    label: str
    config: StudyConfig
    curves: EVRCResult
    aoc: dict[tuple[str, float], float]
    ci: dict[tuple[str, float], BootstrapCI] = field(default_factory=dict)
    random_aoc: dict[tuple[str, float], np.ndarray] = field(default_factory=dict)
    random_fnmr: dict[tuple[str, float], np.ndarray] = field(default_factory=dict)
    n_nan_qualities: int = 0
    comparisons: dict = field(default_factory=dict)

    def random_stats(self, policy: str, fmr: float) -> tuple[float, float, float]:
        """Mean, sample standard deviation and 95th percentile of the random band's AOC.

        NaN when the AOC is undefined for every seed (too few impostor
        comparisons for the FMR at high discard fractions).
        """
        values = self.random_aoc[(policy, fmr)]
        values = values[np.isfinite(values)]
        if len(values) < 2:
            return float("nan"), float("nan"), float("nan")
        return float(values.mean()), float(values.std(ddof=1)), float(np.percentile(values, 95))

    def above_random(self, policy: str, fmr: float) -> bool:
        """Whether the measure's AOC is defined and above the random band's 95th percentile."""
        return bool(self.aoc[(policy, fmr)] > self.random_stats(policy, fmr)[2])

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "config": self.config.__dict__,
            "aoc": {_key(*k): v for k, v in self.aoc.items()},
            "ci": {_key(*k): v.to_dict() for k, v in self.ci.items()},
            "random_aoc": {_key(*k): v.tolist() for k, v in self.random_aoc.items()},
            "above_random_p95": {_key(*k): self.above_random(*k) for k in self.aoc},
            "n_nan_qualities": self.n_nan_qualities,
            "comparisons": self.comparisons,
            "curves": self.curves.to_dict(),
        }


@dataclass(frozen=True)
class PairList:
    """The comparisons of a pair-list study: which samples each listed pair compares, and whether the
    list calls it genuine (the samples' identities may be pseudo-labels, e.g. of an insightface ``.bin``).

    Attributes:
        indices: ``(P, 2)`` sample indices.
        genuine: ``(P,)`` bool.
    """

    indices: np.ndarray
    genuine: np.ndarray

    def __post_init__(self) -> None:
        indices, genuine = np.asarray(self.indices), np.asarray(self.genuine, dtype=bool)
        if indices.ndim != 2 or indices.shape[1] != 2 or genuine.shape != (len(indices),):
            raise ValueError(f"a pair list needs (P, 2) indices and (P,) flags, got {indices.shape} and "
                             f"{genuine.shape}")
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "genuine", genuine)


def _comparisons(embeddings: np.ndarray, identities: np.ndarray, pairs: PairList | None) -> Comparisons:
    """All against all, or the listed pairs only (genuine as the list says)."""
    if pairs is None:
        return all_vs_all(embeddings, identities)
    return comparisons_from_pairs(embeddings, pairs.indices, identities, genuine=pairs.genuine)


def _aocs(result: EVRCResult, config: StudyConfig) -> dict[tuple[str, float], float]:
    return {(p, f): aoc_or_nan(result.get(p, f)) for p in config.policies for f in config.fmrs}


def study_digest(embeddings: np.ndarray, identities: np.ndarray, qualities: list[np.ndarray],
                 config: StudyConfig, pairs: PairList | None = None) -> str:
    """sha256 of everything a study step depends on (array bytes, shapes, dtypes, settings, the pair list)."""
    h = hashlib.sha256(repr(sorted(asdict(config).items())).encode())
    arrays = [np.asarray(embeddings), np.asarray(identities).astype(str)]
    if pairs is not None:
        arrays += [pairs.indices.astype(np.int64), pairs.genuine]
    arrays += [np.asarray(q, np.float64) for q in qualities]
    for array in arrays:
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _key(policy: str, fmr: float) -> str:
    return f"{policy}@{fmr:g}"


@dataclass
class StudySet:
    """Studies of several quality measures on the same comparisons, random band and bootstrap replicates.

    Attributes:
        labels: the measures, in the order given.
        studies: label -> :class:`Study`.
        differences: (policy, FMR) -> {(a, b): paired interval of AOC(a) - AOC(b)} for every ordered
            pair of different labels (empty when ``n_boot == 0``).
    """

    labels: list[str]
    studies: dict[str, Study]
    differences: dict[tuple[str, float], dict[tuple[str, str], BootstrapCI]] = field(default_factory=dict)

    def beats(self, a: str, b: str, policy: str, fmr: float) -> bool:
        """Whether ``a``'s AOC exceeds ``b``'s with the study's confidence (the paired interval is above 0)."""
        ci = self.differences[(policy, fmr)][(a, b)]
        return bool(ci.low > 0)

    def aoc_frame(self) -> pd.DataFrame:
        """One row per (measure, policy, FMR): AOC, interval, random band mean, sd and p95, verdict."""
        import pandas as pd

        rows = []
        for label in self.labels:
            study = self.studies[label]
            for (policy, fmr), value in study.aoc.items():
                ci = study.ci.get((policy, fmr))
                mean, sd, p95 = study.random_stats(policy, fmr)
                rows.append({"method": label, "policy": policy, "fmr": fmr, "aoc": value,
                             "ci_low": ci.low if ci else np.nan, "ci_high": ci.high if ci else np.nan,
                             "random_mean": mean, "random_sd": sd, "random_p95": p95,
                             "above_random_p95": study.above_random(policy, fmr)})
        return pd.DataFrame(rows)

    def difference_frame(self) -> pd.DataFrame:
        """One row per (policy, FMR, a, b): AOC(a) - AOC(b), its paired interval, and whether a beats b."""
        import pandas as pd

        rows = [{"policy": policy, "fmr": fmr, "a": a, "b": b, "difference": ci.estimate, "ci_low": ci.low,
                 "ci_high": ci.high, "a_beats_b": self.beats(a, b, policy, fmr)}
                for (policy, fmr), pairs in self.differences.items() for (a, b), ci in pairs.items()]
        return pd.DataFrame(rows, columns=["policy", "fmr", "a", "b", "difference", "ci_low", "ci_high", "a_beats_b"])

    def to_dict(self) -> dict:
        return {"labels": self.labels, "studies": {label: self.studies[label].to_dict() for label in self.labels},
                "differences": {_key(*k): {f"{a} - {b}": ci.to_dict() for (a, b), ci in pairs.items()}
                                for k, pairs in self.differences.items()}}


def _random_band(comps: Comparisons, n: int, config: StudyConfig, store: StepStore, say: Callable[[str], None]
                 ) -> tuple[dict[tuple[str, float], np.ndarray], dict[tuple[str, float], np.ndarray]]:
    """AOCs and FNMR curves of ``config.random_seeds`` uniformly random qualities, each seed kept once done."""
    say(f"random band over {config.random_seeds} seeds")
    rng = np.random.default_rng(config.seed)
    random_aoc: dict[tuple[str, float], list[float]] = {}
    random_fnmr: dict[tuple[str, float], list[list[float]]] = {}
    for index in range(config.random_seeds):
        random_qualities = rng.random(n)  # drawn even when cached: the stream stays the same
        step = store.get(f"random-{index}")
        if step is None:
            random_result = evrc(comps, random_qualities, fmrs=config.fmrs, policies=config.policies,
                                 axis=config.axis, min_false_matches=config.min_false_matches)
            step = {"aoc": {_key(*k): v for k, v in _aocs(random_result, config).items()},
                    "fnmr": {_key(c.policy, c.fmr_target): c.fnmr.tolist() for c in random_result.curves}}
            store.put(f"random-{index}", step)
        for policy in config.policies:
            for fmr in config.fmrs:
                random_aoc.setdefault((policy, fmr), []).append(step["aoc"][_key(policy, fmr)])
                random_fnmr.setdefault((policy, fmr), []).append(step["fnmr"][_key(policy, fmr)])
    return ({k: np.array(v, dtype=np.float64) for k, v in random_aoc.items()},
            {k: np.array(v, dtype=np.float64) for k, v in random_fnmr.items()})


#: Bootstrap replicates per checkpointed step: an interrupted study loses at most this many.
BOOTSTRAP_CHUNK = 10


def _replicates(comps: Comparisons, qualities: list[np.ndarray], estimates: np.ndarray, config: StudyConfig,
                store: StepStore, say: Callable[[str], None], workers: int = 1) -> BootstrapReplicates:
    """Paired identity replicates of every measure's AOC, kept in steps of :data:`BOOTSTRAP_CHUNK`.

    ``estimates`` ``(M, P, F)``: the measures' AOCs on the full data (their EVRC is already done).  With
    ``workers`` > 1 the steps not yet kept are computed by that many forked processes (:func:`_forked_steps`);
    each step is the same computation wherever it runs, so the replicates are the same.
    """
    measures = f"{len(qualities)} measures, paired" if len(qualities) > 1 else "one measure"
    starts = list(range(0, config.n_boot, BOOTSTRAP_CHUNK))
    kept = {start: store.get(f"bootstrap-{start}") for start in starts}
    pending = [start for start in starts if kept[start] is None]
    workers = min(workers, len(pending)) if FORK_AVAILABLE else 1
    say(f"bootstrap: {config.n_boot} identity resamples x {len(config.fmrs)} FMRs x {len(config.policies)} "
        f"policies, {measures}" + (f", {workers} processes" if workers > 1 else ""))
    inputs = (comps, qualities, estimates, config)
    done = _forked_steps(inputs, pending, workers) if workers > 1 else (
        (start, _bootstrap_step(inputs, start).to_dict()) for start in pending)
    for start, step in done:
        kept[start] = {"replicates": step}
        store.put(f"bootstrap-{start}", kept[start])
    reused = len(starts) - len(pending)
    if reused:
        say(f"bootstrap: {reused} of {len(starts)} steps done in an earlier run")
    return BootstrapReplicates.concatenate([BootstrapReplicates.from_dict(kept[start]["replicates"])
                                            for start in starts])


def _bootstrap_step(inputs: tuple, start: int) -> BootstrapReplicates:
    """Replicates ``start .. start + BOOTSTRAP_CHUNK - 1`` of the study ``inputs`` describes."""
    comps, qualities, estimates, config = inputs
    return bootstrap_replicates(comps, qualities, statistic="aoc", fmrs=config.fmrs, policies=config.policies,
                                axis=config.axis, n_boot=min(BOOTSTRAP_CHUNK, config.n_boot - start),
                                seed=config.seed, start=start, estimates=estimates,
                                min_false_matches=config.min_false_matches)


#: Whether bootstrap steps can run in forked processes, which read the parent's comparisons in place (tens of
#: millions of them; a spawned process would need a copy).  The steps run numpy code only, no BLAS or torch,
#: so the thread pools a fork does not copy are never needed.
FORK_AVAILABLE = sys.platform == "linux" and "fork" in mp.get_all_start_methods()
#: The study a forked bootstrap process reads: set just before the processes are forked, inherited, never pickled.
_FORK_INPUTS: list[tuple] = []


def _forked_step(start: int) -> tuple[int, dict]:
    return start, _bootstrap_step(_FORK_INPUTS[0], start).to_dict()


def _forked_steps(inputs: tuple, starts: list[int], workers: int) -> Iterator[tuple[int, dict]]:
    """``(start, replicates as a dict)`` of each step, in order, from ``workers`` forked processes."""
    _FORK_INPUTS[:] = [inputs]
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            yield from pool.imap(_forked_step, starts)
            pool.close()  # a clean shutdown; the with-block's exit terminates the workers on an interruption
            pool.join()
    finally:
        _FORK_INPUTS.clear()


def run_studies(
    measures: dict[str, np.ndarray],
    embeddings: np.ndarray,
    identities: np.ndarray,
    config: StudyConfig = StudyConfig(),
    progress: Callable[[str], None] | None = None,
    checkpoint_dir: Path | None = None,
    pairs: PairList | None = None,
    workers: int = 1,
) -> StudySet:
    """EVRC, AOC, bootstrap intervals and the shared random band for every quality measure.

    Args:
        measures: label -> ``(N,)`` qualities, higher = better; NaN = not assessed.
        embeddings: ``(N, D)`` unit embeddings of the deployed model (no NaN rows).
        identities: ``(N,)`` identity labels (the bootstrap's units).
        config: study settings.
        progress: called with a short message before each long step.
        checkpoint_dir: where finished random-band seeds and bootstraps are kept
            for reruns and resumption (None: nowhere).
        pairs: compare only these pairs (a pair-list protocol: LFW View 2, an insightface ``.bin``);
            None: every sample with every other.
        workers: processes for the bootstrap (the same replicates with any number).
    """
    say = progress or (lambda message: None)
    if not measures:
        raise ValueError("no quality measure to study")
    labels = list(measures)
    qualities = [np.asarray(measures[label], dtype=np.float64) for label in labels]
    for label, q in zip(labels, qualities):
        if q.shape != (len(embeddings),):
            raise ValueError(f"{label}: {q.shape} qualities for {len(embeddings)} images")
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN rows; leave failed images out of the study")
    say(f"comparing all {len(embeddings)} images with each other" if pairs is None else
        f"comparing the {len(pairs.indices)} listed pairs of {len(embeddings)} images")
    comps = _comparisons(embeddings, identities, pairs)
    random_aoc, random_fnmr = _random_band(
        comps, len(embeddings), config,
        StepStore(checkpoint_dir, study_digest(embeddings, identities, [], config, pairs)), say)
    studies = {}
    for label, q in zip(labels, qualities):
        say(f"EVRC of {label}")
        curves = evrc(comps, q, fmrs=config.fmrs, policies=config.policies, axis=config.axis,
                      min_false_matches=config.min_false_matches)
        studies[label] = Study(label, config, curves, _aocs(curves, config), random_aoc=random_aoc,
                               random_fnmr=random_fnmr, n_nan_qualities=int(np.isnan(q).sum()),
                               comparisons=comps.to_dict())
    result = StudySet(labels, studies)
    if config.n_boot:
        store = StepStore(checkpoint_dir, study_digest(embeddings, identities, qualities, config, pairs))
        estimates = np.array([[[studies[label].aoc[(p, f)] for f in config.fmrs] for p in config.policies]
                              for label in labels])
        replicates = _replicates(comps, qualities, estimates, config, store, say, workers)
        for policy in config.policies:
            for fmr in config.fmrs:
                for m, label in enumerate(labels):
                    studies[label].ci[(policy, fmr)] = replicates.interval(m, policy, fmr, config.confidence)
                result.differences[(policy, fmr)] = {
                    (a, b): replicates.difference(i, j, policy, fmr, config.confidence)
                    for i, a in enumerate(labels) for j, b in enumerate(labels) if i != j}
    return result


def run_study(
    label: str,
    embeddings: np.ndarray,
    identities: np.ndarray,
    qualities: np.ndarray,
    config: StudyConfig = StudyConfig(),
    progress: Callable[[str], None] | None = None,
    checkpoint_dir: Path | None = None,
) -> Study:
    """:func:`run_studies` of one quality measure."""
    return run_studies({label: qualities}, embeddings, identities, config, progress, checkpoint_dir).studies[label]
