"""``degrade``: which image factor each quality score responds to, and whether its response tracks what
recognition loses.

``fiqa-bench compare --protocol degrade --methods all [--dataset lfw:devtest] [--images 300]`` takes, of
``--images`` people of the dataset (default LFW peopleDevTest, people the shipped heads never saw), a probe
photo and a clean reference photo, and degrades each probe *before detection* by every factor of
:mod:`fiqa_bench.faces.degradations` at five levels of a physical parameter (blur sigma, JPEG quality, gain
...; :mod:`fiqa_bench.pipeline.degraded`).  Every copy is then detected, aligned, embedded by the deployed
model and scored by every method, as any photo would be.  The results folder holds:

* ``table.md``: the factors and their levels; the **recognition cost** of each factor (FNMR of the deployed
  model at ``--fmr``, default 1e-3, per level: genuine = clean reference against the probe's copy, the
  threshold fixed on the impostor comparisons of the clean references with the other people's clean probes,
  as a system calibrated on clean photos); **what the detector sees** (per level, the share of copies
  whose face was not found and the median shift of dlib's eye centres from the clean probe's: rotation moves
  them by design, the others should not); per method and factor the **monotonicity** (Spearman between
  level and quality over the clean probes and their copies, and the share of (clean, copy) pairs where the
  clean one scores higher) and the **utility** (Spearman between a copy's quality drop and its genuine
  score drop, both from the clean probe): a quality score is useful against a factor when it falls where
  recognition falls, not merely when the image changes; and which method to use against which factor;
* ``monotonicity.png``, ``utility.png``: methods x factors heatmaps;
* ``cross-quality/``: the ordinary EVRC study (the ``pairs`` protocol's, fixed and recomputed) on a
  cross-quality pair list made of the same images, as XQLFW makes one of LFW: every probe image (clean and
  every copy) against its person's clean reference (genuine) and against another person's clean reference
  drawn with the seed (impostor); ``cross-quality-pairs.csv`` lists those pairs
  (``compare --protocol pairs --dataset pairs:<it>`` runs any other method on them);
* ``degrade.json`` (every number), ``manifest.csv`` (every image, its factor, level and physical
  parameter, what the operator drew) and ``provenance.json``.

Trained methods score the copies with the heads trained on the other View 1 half (the dataset's own
cross-fitting when it has one fold, e.g. ``lfw:devtest`` -> heads trained on ``lfw:devtrain``), or on
``--train-on``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from fiqa_bench.data import Dataset, Pair, load_dataset
from fiqa_bench.faces.degradations import FACTORS
from fiqa_bench.method import MethodSpec
from fiqa_bench.metrics.degradation import monotonicity, recognition_cost, utility
from fiqa_bench.pipeline.cache import write_text_atomic
from fiqa_bench.pipeline.degraded import DegradedSet, make_degraded_set
from fiqa_bench.pipeline.embedding import dataset_landmarks
from fiqa_bench.protocol import PROTOCOLS, Option, Protocol, Request
from fiqa_bench.protocol.evrc import EVRCRun, study, write_run
from fiqa_bench.protocol.scoring import Scoring, no_cross_fitting, progress
from fiqa_bench.report.heatmap import plot_heatmap
from fiqa_bench.report.provenance import provenance

DEFAULT_DATASET = "lfw:devtest"


def _factor_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in FACTORS]
    if unknown or not names:
        raise ValueError(f"unknown factor(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(FACTORS)}")
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 2:
        raise ValueError(f"--images must be >= 2 (impostors need two people), got {value}")
    return value


def cross_quality_pairs(made: DegradedSet, seed: int) -> tuple[Pair, ...]:
    """Every probe image (clean and each copy) against its person's clean reference (genuine) and against the
    reference of another person drawn with ``seed`` (impostor)."""
    role, probe = made.column("role"), made.column("probe")
    references = np.flatnonzero(role == "reference")
    rng = np.random.default_rng(seed)
    pairs = []
    for index in np.flatnonzero(role == "probe"):
        own = int(probe[index])
        other = int(rng.integers(0, len(references) - 1))
        other += other >= own  # any reference but the probe's own
        pairs += [Pair(int(references[own]), int(index), True), Pair(int(references[other]), int(index), False)]
    return tuple(pairs)


def scoring_for(base: Dataset, degraded: Dataset, request: Request) -> Scoring:
    """Heads trained on ``--train-on``, else on the training set of the base dataset's own single-fold
    cross-fitting (``lfw:devtest`` -> ``lfw:devtrain``), else the shipped heads with the usual warning."""
    if request.train_on is not None:
        return Scoring.trained_on(degraded, request.train_on, request.context)
    if base.cross_fitting is not None:
        folds = base.cross_fitting().folds
        if len(folds) == 1:
            trained_on = folds[0][1]
            return Scoring(((degraded, trained_on),), f"Trained methods scored every image with heads trained on "
                           f"{trained_on}, whose people are not {base.name}'s (its own cross-fitting).", trained_on)
    return Scoring((), no_cross_fitting(degraded.name))


@dataclass(frozen=True)
class DegradeProtocol(Protocol):
    """See the module docstring."""

    name: str = "degrade"
    description: str = ("controlled degradations (blur, noise, JPEG, resolution, exposure, contrast, occlusion, "
                        "rotation) at 5 physical levels: each method's monotonicity and utility per factor, "
                        "recognition cost, heatmaps, and a cross-quality pair list")
    options: tuple[Option, ...] = (
        Option("images", "people giving a probe and a clean reference (default 300)", _positive),
        Option("factors", f"comma-separated factors (default all: {', '.join(FACTORS)})", _factor_names),
        Option("fmr", "FMR of the recognition-cost threshold, fixed on clean impostors (default 1e-3)", float),
    )

    def compare(self, methods: Sequence[MethodSpec], request: Request) -> Path:
        context, config = request.context, request.config
        say = progress(context)
        started = provenance()
        base = load_dataset(request.dataset or DEFAULT_DATASET, context.data_root, cache_dir=context.cache_dir)
        say(f"degrade: degraded copies of {request.options.get('images', 300)} probes of {base.name}")
        made = make_degraded_set(base, context, request.options.get("images", 300), request.options.get("factors"),
                                 config.seed)
        pairs_protocol = PROTOCOLS.get("pairs")
        pairs = cross_quality_pairs(made, config.seed)
        run = study(methods, protocol=self.name, dataset=made.dataset, context=context, quality_models=[request.model],
                    deployed_model=request.deployed, config=pairs_protocol.study_config(request), pairs=pairs,
                    scoring=scoring_for(base, made.dataset, request))
        out = Path(request.out_dir)
        write_run(run, out / "cross-quality", started, context)
        _write_pairs(made, pairs, out / "cross-quality-pairs.csv")
        result = degradation_tables(made, run, request.options.get("fmr", 1e-3), context)
        _write(out, made, run, result, started, request)
        return out


def degradation_tables(made: DegradedSet, run: EVRCRun, fmr: float, context) -> dict:  # noqa: ANN001
    """Every number of the README: recognition cost, detector, monotonicity and utility (see the module docstring)."""
    role, probe = made.column("role"), made.column("probe")
    factor, severity = made.column("factor"), made.column("severity").astype(int)
    emb = run.embeddings.embeddings
    references = np.flatnonzero(role == "reference")
    is_probe = role == "probe"
    genuine = np.full(len(role), np.nan)
    genuine[is_probe] = np.einsum("ij,ij->i", emb[is_probe], emb[references[probe[is_probe].astype(int)]])
    clean = is_probe & (factor == "clean")
    gram = emb[references] @ emb[clean].T
    owner = probe[clean].astype(int)
    impostors = gram[np.arange(len(references))[:, None] != owner[None, :]]
    impostors = impostors[np.isfinite(impostors)]
    deployed_context = context.for_model(run.deployed_model)
    marks = dataset_landmarks(made.dataset, deployed_context)[0]
    eyes = np.stack([marks[:, 0:2].mean(axis=1), marks[:, 2:4].mean(axis=1)], axis=1)  # (N, 2 eyes, xy)
    clean_of = {int(p): i for i, p in zip(np.flatnonzero(clean), probe[clean])}
    no_face = np.array([not f.startswith("found") for f in run.embeddings.face])
    factors = [f for f in FACTORS if f in set(factor)]
    out: dict = {"fmr": fmr, "n_impostor": int(len(impostors)), "factors": {}, "methods": {}}
    for name in factors:
        rows = is_probe & ((factor == name) | (factor == "clean"))
        cost = recognition_cost(severity[rows], genuine[rows], impostors, fmr)
        shift = {}
        for level in range(1, 6):
            at = np.flatnonzero(rows & (severity == level))
            moved = [np.linalg.norm(eyes[i] - eyes[clean_of[int(probe[i])]], axis=1).mean() for i in at]
            shift[level] = float(np.nanmedian(moved)) if moved else float("nan")
        out["factors"][name] = {
            "parameter": FACTORS[name].parameter, "levels": list(FACTORS[name].levels), "cost": cost.to_dict(),
            "no_face": {level: float(no_face[rows & (severity == level)].mean()) for level in range(6)},
            "eye_shift_px": shift}
    for label, scored in run.scored.items():
        quality = scored.table.quality
        per = {}
        for name in factors:
            rows = is_probe & ((factor == name) | (factor == "clean"))
            mono = monotonicity(severity[rows], quality[rows], probe[rows].astype(int))
            use = utility(severity[rows], quality[rows], genuine[rows], probe[rows].astype(int))
            per[name] = {"monotonicity": mono.to_dict(), "utility": use.to_dict()}
        out["methods"][label] = per
    return out


def _frame(result: dict, metric: str, field: str) -> pd.DataFrame:
    """Methods x factors of one number (NaN where undefined)."""
    return pd.DataFrame({name: {label: per[name][metric][field] for label, per in result["methods"].items()}
                         for name in next(iter(result["methods"].values()))}).astype(float)


def _threshold(cost: dict) -> str:
    """The recognition-cost threshold, or why there is none."""
    threshold = cost["threshold"]
    if threshold["threshold"] is None:
        return (f"n/a: FMR {threshold['fmr_target']:g} of {threshold['n_impostor']} impostors allows "
                f"{threshold['allowed_false_matches']} false matches, fewer than {threshold['min_false_matches']}")
    return f"{threshold['threshold']:.4f}"


def _markdown(frame: pd.DataFrame, fmt: str = "{:+.2f}") -> str:
    return frame.map(lambda v: "n/a" if not np.isfinite(v) else fmt.format(v)).to_markdown(disable_numparse=True)


def _write_pairs(made: DegradedSet, pairs: Sequence[Pair], path: Path) -> None:
    """``path1,path2,same`` of the cross-quality pairs, for ``compare --protocol pairs --dataset pairs:<it>``."""
    paths = [str(s.path) for s in made.dataset.samples]
    lines = ["path1,path2,same"] + [f"{paths[p.first]},{paths[p.second]},{int(p.genuine)}" for p in pairs]
    write_text_atomic(path, "\n".join(lines) + "\n")


def _write(out: Path, made: DegradedSet, run: EVRCRun, result: dict, started: dict, request: Request) -> None:
    mono, clean_higher = _frame(result, "monotonicity", "spearman"), _frame(result, "monotonicity", "clean_higher")
    use = _frame(result, "utility", "spearman")
    plot_heatmap(mono, out / "monotonicity.png", title="Monotonicity: Spearman(level, quality); good = -1")
    plot_heatmap(use, out / "utility.png", title="Utility: Spearman(quality drop, genuine score drop); good = +1")
    factors = result["factors"]
    levels = pd.DataFrame({name: [f"{v:g}" for v in f["levels"]] for name, f in factors.items()},
                          index=[f"level {k}" for k in range(1, 6)]).T
    levels.insert(0, "parameter", [f["parameter"] for f in factors.values()])
    cost = pd.DataFrame({name: {("clean" if k == "0" else f"level {k}"): v for k, v in f["cost"]["fnmr"].items()}
                         for name, f in factors.items()}).T
    no_face = pd.DataFrame({name: {("clean" if k == 0 else f"level {k}"): v for k, v in f["no_face"].items()}
                            for name, f in factors.items()}).T
    shift = pd.DataFrame({name: {f"level {k}": v for k, v in f["eye_shift_px"].items()}
                          for name, f in factors.items()}).T
    best = pd.DataFrame({"most monotone (lowest Spearman)": mono.idxmin(), "Spearman": mono.min().round(2),
                         "most useful (highest utility)": use.idxmax(), "utility": use.max().round(2)})
    n_probes = int(sum(1 for r in made.rows if r["role"] == "probe" and r["factor"] == "clean"))
    first_cost = next(iter(factors.values()))["cost"]
    lines = [
        f"# Controlled degradations: {', '.join(run.scored)} on {made.dataset.name}", "",
        f"{n_probes} probes of {made.dataset.name.removeprefix('degraded:')}, each degraded by {len(factors)} factors "
        f"at 5 levels before detection ({len(made.dataset)} images with the clean references); deployed model "
        f"{run.deployed_model}, faces detected by {run.embeddings.meta['detector']}. {run.scoring_note}", "",
        "## Factors and levels (physical parameters; every copy's own in manifest.csv)", "",
        levels.to_markdown(disable_numparse=True), "",
        f"## Recognition cost: FNMR of {run.deployed_model} at FMR {result['fmr']:g} per level", "",
        f"Genuine: the clean reference against the probe's copy; the threshold "
        f"({_threshold(first_cost)}) fixed on the "
        f"{result['n_impostor']} impostor comparisons of the clean references with the other people's clean probes.",
        "", _markdown(cost, "{:.3f}"), "",
        "## What the detector sees", "",
        "Share of copies whose face was not found (aligned on the fallback box):", "",
        _markdown(no_face, "{:.3f}"), "",
        "Median shift of dlib's eye centres from the clean probe's, in pixels (rotation moves the face by design; "
        "for the other factors a shift is the detector or the landmarks misled):", "",
        _markdown(shift, "{:.1f}"), "",
        "## Monotonicity: Spearman between level (0 = clean ... 5) and quality", "",
        "A quality score that responds to the factor falls as the level rises: near -1.", "",
        _markdown(mono), "", "Share of (clean, copy) pairs where the clean copy scores higher (ties half):", "",
        _markdown(clean_higher, "{:.2f}"), "", "![monotonicity](monotonicity.png)", "",
        "## Utility: Spearman between a copy's quality drop and its genuine score drop", "",
        "Drops from the clean probe.  Useful against a factor: the quality falls where recognition falls (near +1), "
        "not merely where the image changes.", "",
        _markdown(use), "", "![utility](utility.png)", "",
        "## Which method against which factor", "", best.to_markdown(disable_numparse=True), "",
        "The cross-quality EVRC study of the same images: [cross-quality/table.md](cross-quality/table.md).", ""]
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "table.md", "\n".join(lines))
    write_text_atomic(out / "degrade.json", json.dumps(result, indent=1, sort_keys=True) + "\n")
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(made.rows[0]))
        writer.writeheader()
        for row in made.rows:
            writer.writerow(row | {"path": f"{Path(row['path']).parent.name}/{Path(row['path']).name}"})
    stamp = started | {"protocol": "degrade", "dataset": made.dataset.name, "folder": str(made.folder),
                       "deployed_model": run.deployed_model, "options": {k: (list(v) if isinstance(v, tuple) else v)
                                                                         for k, v in request.options.items()},
                       "seed": request.config.seed}
    write_text_atomic(out / "provenance.json", json.dumps(stamp, indent=2, sort_keys=True) + "\n")


DEGRADE = DegradeProtocol()
PROTOCOLS.add(DEGRADE.name, DEGRADE, description=DEGRADE.description)
