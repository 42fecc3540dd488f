"""How well does each SDD-FIQA regressor learn its labels, and what does that buy on the `lfw` protocol?

Cross-fitted exactly as the ``lfw`` protocol (a regressor trained on LFW
peopleDevTrain scores peopleDevTest and one trained on peopleDevTest scores
peopleDevTrain; dlib-resnet; all 13,233 images, every comparison), two
tables:

1. Regressor variants, all trained on SDD pseudo-labels (m=24, K=12, seed 0).
   *Label agreement* is the Spearman correlation between a regressor's
   predictions and the pseudo-labels of the identities it never saw (the
   other split's labels; singletons have none).  It is the criterion the
   shipped head was chosen on, because it does not look at the EVRC that
   reports the result.  The AOCs are given beside it.
2. Pseudo-label variants (the paper's Sec. 4.4 ablation plus the signed
   distance): the AOC of the labels themselves (an *oracle*: it needs the
   identities of the test images, so it is a ceiling, not a method;
   singletons have no label and are discarded first) and of the default
   regressor trained on them.

The random-quality band that decides the verdict is in the results folder
of ``fiqa-bench run --method sdd --protocol lfw`` (table.md).

    python benchmarks/sdd_regressor.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import load_dataset
from fiqa_bench.metrics import all_vs_all, evrc
from fiqa_bench.metrics.summaries import aoc_or_nan
from fiqa_bench.pipeline.paths import default_data_root, resolve_cache_dir
from fiqa_bench.pipeline.embedding import embed_dataset
from fiqa_bench.methods.sdd.labels import VARIANTS, sdd_pseudo_labels
from fiqa_bench.method.training import TrainConfig, predict_head, train_head
from fiqa_bench.recognition import create_model

FMRS = (1e-2, 1e-3, 1e-4)
SPLITS = ("devtrain", "devtest")
OTHER = {"devtrain": "devtest", "devtest": "devtrain"}

REGRESSORS = {
    "paper head: one linear unit on the backbone output": TrainConfig(hidden=0, ensemble=1, features="backbone"),
    "1,024 hidden units on the backbone output (shipped before)": TrainConfig(
        hidden=1024, epochs=60, ensemble=1, features="backbone"),
    "256 hidden units on the pooled stage outputs, one head": TrainConfig(ensemble=1),
    "the same, mean of five heads (default)": TrainConfig(),
}


@dataclass
class Split:
    rows: np.ndarray  # positions in the full LFW list
    identities: np.ndarray
    embeddings: np.ndarray
    features: dict[str, np.ndarray]


def load(cache_dir) -> tuple[np.ndarray, np.ndarray, dict[str, Split]]:
    root, model = default_data_root(), create_model("dlib-resnet")
    full = embed_dataset(load_dataset("lfw", root, "all"), model, RunContext(cache_dir, progress=False))
    position = {p: i for i, p in enumerate(full.paths)}
    splits = {}
    for name in SPLITS:
        dataset = load_dataset("lfw", root, name)
        emb = embed_dataset(dataset, model, RunContext(cache_dir, progress=False))
        features = {out: embed_dataset(dataset, model, RunContext(cache_dir, progress=False), output=out).embeddings
                    for out in ("backbone", "stages")}
        splits[name] = Split(np.array([position[p] for p in emb.paths]), emb.identities, emb.embeddings, features)
    return full.embeddings, full.identities, splits


def cross_fit(splits: dict[str, Split], labels: dict[str, np.ndarray], config: TrainConfig,
              n: int) -> np.ndarray:
    """Qualities of all LFW images, each from the regressor trained on the other split."""
    quality = np.full(n, np.nan)
    for train in SPLITS:
        use = np.isfinite(labels[train])
        head, _ = train_head(splits[train].features[config.features][use], labels[train][use], config)
        test = splits[OTHER[train]]
        quality[test.rows] = predict_head(head, test.features[config.features])
    return quality


def agreement(splits: dict[str, Split], labels: dict[str, np.ndarray], quality: np.ndarray) -> list[float]:
    out = []
    for name in SPLITS:
        ok = np.isfinite(labels[name])
        out.append(float(spearmanr(quality[splits[name].rows][ok], labels[name][ok])[0]))
    return out


def aocs(comparisons, quality: np.ndarray) -> dict[tuple[str, float], float]:
    result = evrc(comparisons, quality, fmrs=FMRS, policies=("recomputed", "fixed"))
    return {(c.policy, c.fmr_target): aoc_or_nan(c) for c in result.curves}


def aoc_cells(values: dict[tuple[str, float], float]) -> str:
    return " | ".join(f"{values[(policy, fmr)]:.3f}" for policy in ("recomputed", "fixed") for fmr in FMRS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()
    started = time.perf_counter()
    embeddings, identities, splits = load(resolve_cache_dir(args.cache_dir))
    comparisons = all_vs_all(embeddings, identities)
    labels = {v: {s: sdd_pseudo_labels(splits[s].embeddings, splits[s].identities, variant=v).labels
                  for s in SPLITS} for v in VARIANTS}
    n = len(embeddings)
    header = ("| {} | recomputed 1e-2 | 1e-3 | 1e-4 | fixed 1e-2 | 1e-3 | 1e-4 |")
    rule = "|---" + "|---:" * 6 + "|"
    print(f"LFW all {n} images, dlib-resnet, cross-fitted over View 1; "
          f"{len(comparisons.genuine_scores)} genuine / {len(comparisons.impostor_scores)} impostor comparisons\n")
    print("| regressor (SDD labels) | label agreement devtrain / devtest images | recomputed 1e-2 | 1e-3 | 1e-4 "
          "| fixed 1e-2 | 1e-3 | 1e-4 |")
    print("|---|---:" + "|---:" * 6 + "|")
    default = None
    for name, config in REGRESSORS.items():
        quality = cross_fit(splits, labels["sdd"], config, n)
        if config == TrainConfig():
            default = quality  # reused below as the regressed "sdd" row
        rho = agreement(splits, labels["sdd"], quality)
        print(f"| {name} | {rho[0]:.3f} / {rho[1]:.3f} | {aoc_cells(aocs(comparisons, quality))} |", flush=True)
    print()
    print(header.format("pseudo-labels (AOC)"))
    print(rule)
    for variant in VARIANTS:
        oracle = np.full(n, np.nan)
        for s in SPLITS:
            oracle[splits[s].rows] = labels[variant][s]
        print(f"| {variant}: the labels themselves (oracle) | {aoc_cells(aocs(comparisons, oracle))} |", flush=True)
        regressed = default if variant == "sdd" else cross_fit(splits, labels[variant], TrainConfig(), n)
        print(f"| {variant}: default regressor trained on them | {aoc_cells(aocs(comparisons, regressed))} |",
              flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
