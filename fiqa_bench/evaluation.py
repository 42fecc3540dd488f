"""An EVRC study of one quality measure: curves, AOC, bootstrap intervals, random band.

Given the comparisons of a deployed recognition model and one quality per
image, :func:`run_study` computes

* the EVRC for every FMR and threshold policy (``fiqa_bench.metrics.evrc``,
  images axis: the paper's "ratio of unconsidered images"),
* the paper-compatible AOC of each (SDD-FIQA Eq. 13, FNMR relative to zero
  discard, see :mod:`fiqa_bench.metrics.summaries`),
* a percentile bootstrap interval of each AOC, resampling identities
  (:func:`fiqa_bench.metrics.bootstrap_ci`); for speed the replicates at
  FMR ``f`` use a seeded uniform subsample of ``boot_impostors_per_inverse_fmr / f``
  impostor comparisons (all of them when there are fewer).  The default,
  8,000 / f, keeps at least 2 x 10/f impostors among the images left at
  95% discard (a fraction 0.05^2 of all pairs), so the subsample never
  makes an AOC undefined that is defined on all comparisons.
* the **random band**: the same AOCs for ``random_seeds`` uniformly random
  qualities.  On LFW a random quality's AOC varies a lot from seed to seed
  (most genuine pairs belong to a few people), so a method's AOC means
  something only against this band; the study reports whether it lies
  above the band's 95th percentile.

The random band and the bootstrap take minutes on LFW; with a
``checkpoint_dir`` each finished seed and each finished interval is kept
(:class:`fiqa_bench.cache.StepStore`, keyed by a digest of the embeddings,
identities, qualities and settings), so a second run, or a run resumed after
an interruption, recomputes only what is missing, with identical results.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fiqa_bench.cache import StepStore
from fiqa_bench.metrics import BootstrapCI, EVRCResult, all_vs_all, bootstrap_ci, evrc
from fiqa_bench.metrics.summaries import aoc_or_nan


@dataclass(frozen=True)
class StudyConfig:
    """Settings of an EVRC study (defaults: the paper's FMRs, both policies)."""

    fmrs: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    policies: tuple[str, ...] = ("recomputed", "fixed")
    axis: str = "images"
    random_seeds: int = 20
    n_boot: int = 100
    boot_impostors_per_inverse_fmr: int = 8_000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.random_seeds < 2:
            raise ValueError(f"random_seeds must be >= 2 to give a band, got {self.random_seeds}")
        if self.n_boot < 0:
            raise ValueError(f"n_boot must be >= 0, got {self.n_boot}")


@dataclass
class Study:
    """What :func:`run_study` found.

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
        boot_sampling: FMR -> the impostor subsample the bootstrap used.
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
    boot_sampling: dict = field(default_factory=dict)

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
            "boot_sampling": self.boot_sampling,
            "curves": self.curves.to_dict(),
        }


def _aocs(result: EVRCResult, config: StudyConfig) -> dict[tuple[str, float], float]:
    return {(p, f): aoc_or_nan(result.get(p, f)) for p in config.policies for f in config.fmrs}


def study_digest(embeddings: np.ndarray, identities: np.ndarray, qualities: np.ndarray,
                 config: StudyConfig) -> str:
    """sha256 of everything a study's numbers depend on (array bytes, shapes, dtypes, settings)."""
    h = hashlib.sha256(repr(sorted(asdict(config).items())).encode())
    for array in (np.asarray(embeddings), np.asarray(identities).astype(str), np.asarray(qualities, np.float64)):
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _key(policy: str, fmr: float) -> str:
    return f"{policy}@{fmr:g}"


def run_study(
    label: str,
    embeddings: np.ndarray,
    identities: np.ndarray,
    qualities: np.ndarray,
    config: StudyConfig = StudyConfig(),
    progress: Callable[[str], None] | None = None,
    checkpoint_dir: Path | None = None,
) -> Study:
    """EVRC, AOC, bootstrap intervals and the random band for one quality measure.

    Args:
        label: name of the quality measure.
        embeddings: ``(N, D)`` unit embeddings of the deployed model (no NaN rows).
        identities: ``(N,)`` identity labels.
        qualities: ``(N,)`` qualities, higher = better; NaN = not assessed.
        config: study settings.
        progress: called with a short message before each long step.
        checkpoint_dir: where finished random-band seeds and bootstrap
            intervals are kept for reruns and resumption (None: nowhere).
    """
    say = progress or (lambda message: None)
    qualities = np.asarray(qualities, dtype=np.float64)
    if not np.isfinite(embeddings).all():
        raise ValueError("embeddings contain NaN rows; leave failed images out of the study")
    say(f"comparing all {len(embeddings)} images with each other")
    comps = all_vs_all(embeddings, identities)
    say(f"EVRC of {label}")
    curves = evrc(comps, qualities, fmrs=config.fmrs, policies=config.policies, axis=config.axis)
    study = Study(label, config, curves, _aocs(curves, config), n_nan_qualities=int(np.isnan(qualities).sum()),
                  comparisons=comps.to_dict())
    store = StepStore(checkpoint_dir, study_digest(embeddings, identities, qualities, config))
    rng = np.random.default_rng(config.seed)
    random_aoc: dict[tuple[str, float], list[float]] = {}
    random_fnmr: dict[tuple[str, float], list[list[float]]] = {}
    say(f"random band over {config.random_seeds} seeds")
    for index in range(config.random_seeds):
        random_qualities = rng.random(len(qualities))  # drawn even when cached: the stream stays the same
        step = store.get(f"random-{index}")
        if step is None:
            random_result = evrc(comps, random_qualities, fmrs=config.fmrs, policies=config.policies,
                                 axis=config.axis)
            step = {"aoc": {_key(*k): v for k, v in _aocs(random_result, config).items()},
                    "fnmr": {_key(c.policy, c.fmr_target): c.fnmr.tolist() for c in random_result.curves}}
            store.put(f"random-{index}", step)
        for policy in config.policies:
            for fmr in config.fmrs:
                random_aoc.setdefault((policy, fmr), []).append(step["aoc"][_key(policy, fmr)])
                random_fnmr.setdefault((policy, fmr), []).append(step["fnmr"][_key(policy, fmr)])
    study.random_aoc = {k: np.array(v, dtype=np.float64) for k, v in random_aoc.items()}
    study.random_fnmr = {k: np.array(v, dtype=np.float64) for k, v in random_fnmr.items()}
    for fmr in config.fmrs if config.n_boot else ():
        done = {policy: store.get(f"bootstrap-{_key(policy, fmr)}") for policy in config.policies}
        if all(done.values()):
            sampling = next(iter(done.values()))["sampling"]  # type: ignore[index]
        else:
            budget = int(np.ceil(config.boot_impostors_per_inverse_fmr / fmr))
            boot_comps = comps.subsample_impostors(budget, config.seed)
            sampling = boot_comps.to_dict()
        study.boot_sampling[f"{fmr:g}"] = sampling
        for policy in config.policies:
            step = done[policy]
            if step is None:
                say(f"bootstrap ({config.n_boot} identity resamples), {policy}, FMR {fmr:g}")
                ci = bootstrap_ci(boot_comps, qualities, statistic="aoc", fmr=fmr, policy=policy, axis=config.axis,
                                  n_boot=config.n_boot, confidence=config.confidence, seed=config.seed)
                store.put(f"bootstrap-{_key(policy, fmr)}", {"ci": ci.to_dict(), "sampling": sampling})
            else:
                say(f"bootstrap, {policy}, FMR {fmr:g}: done in an earlier run")
                ci = BootstrapCI.from_dict(step["ci"])
            study.ci[(policy, fmr)] = ci
    return study


def _fmt(x: float) -> str:
    return "n/a" if np.isnan(x) else f"{x:.4f}"


def study_markdown(study: Study) -> str:
    """Tables in the layout of SDD-FIQA Table 1 (AOC per FMR and their average), one per policy."""
    cfg = study.config
    out = []
    for policy in cfg.policies:
        header = "| quality | " + " | ".join(f"FMR={f:g}" for f in cfg.fmrs) + " | Avg |"
        rule = "|---" * (len(cfg.fmrs) + 2) + "|"
        values = [study.aoc[(policy, f)] for f in cfg.fmrs]
        cells = []
        for f, v in zip(cfg.fmrs, values):
            ci = study.ci.get((policy, f))
            cells.append(_fmt(v) + (f" [{_fmt(ci.low)}, {_fmt(ci.high)}]" if ci else ""))
        rows = [f"| {study.label} | " + " | ".join(cells) + f" | {_fmt(float(np.mean(values)))} |"]
        means, sds, p95 = zip(*(study.random_stats(policy, f) for f in cfg.fmrs))
        rows.append(f"| random, mean ± sd over {cfg.random_seeds} seeds | "
                    + " | ".join("n/a" if np.isnan(m) else f"{m:.4f} ± {s:.4f}" for m, s in zip(means, sds))
                    + f" | {_fmt(float(np.mean(means)))} |")
        rows.append("| random, 95th percentile | " + " | ".join(_fmt(p) for p in p95)
                    + f" | {_fmt(float(np.mean(p95)))} |")
        verdict = ", ".join(f"FMR={f:g}: " + ("n/a" if np.isnan(study.aoc[(policy, f)]) else
                                             "yes" if study.above_random(policy, f) else "NO")
                            for f in cfg.fmrs)
        out += [f"### AOC, {policy} threshold ({cfg.axis} axis)", "", header, rule, *rows, "",
                f"{study.label} above the random band's 95th percentile: {verdict}.", ""]
    c = study.comparisons
    notes = [f"AOC = 1 - mean over discard ratio in [0, 0.95] of FNMR / FNMR(0) (paper-compatible Eq. 13); "
             f"{c.get('n_genuine')} genuine and {c.get('n_impostor')} impostor comparisons; "
             f"pair quality = min of the two images; accept if score >= t."]
    if study.ci:
        used = ", ".join(f"{b['n_impostor']} at FMR={f}" for f, b in study.boot_sampling.items())
        notes.append(f"Brackets: {cfg.confidence:.0%} percentile bootstrap intervals over {cfg.n_boot} "
                     f"identity resamples; impostor comparisons used (seeded uniform subsample where "
                     f"fewer than all): {used}.")
    if any(np.isnan(v) for v in study.aoc.values()):
        notes.append("n/a: undefined, because fewer than 10/FMR impostor comparisons remain at high discard "
                     "ratios for that FMR (the threshold would rest on fewer than 10 false matches).")
    if study.n_nan_qualities:
        notes.append(f"{study.n_nan_qualities} images had no quality and were discarded first.")
    return "\n".join(out + notes) + "\n"
