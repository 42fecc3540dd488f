"""Does the SDD-FIQA head learn its labels better with more training identities?

Trains the default head (one member, to isolate the data effect) on random
subsets of LFW peopleDevTrain identities (labels computed once on all of
peopleDevTrain, so the target does not change with the subset) and reports
its label agreement on peopleDevTest: the Spearman correlation between its
predictions and the peopleDevTest pseudo-labels (dlib-resnet, m=24, K=12).
Three random subsets per fraction below 1.

    python benchmarks/sdd_learning_curve.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import spearmanr

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import load_dataset
from fiqa_bench.pipeline.paths import default_data_root, resolve_cache_dir
from fiqa_bench.pipeline.embedding import embed_dataset
from fiqa_bench.methods.sdd.labels import sdd_pseudo_labels
from fiqa_bench.method.training import TrainConfig, predict_head, train_head
from fiqa_bench.recognition import create_model

FRACTIONS = (0.125, 0.25, 0.5, 1.0)


def split_arrays(name: str, cache_dir) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(identities, stage features, SDD pseudo-labels) of one LFW View 1 split."""
    dataset, model = load_dataset("lfw", default_data_root(), name), create_model("dlib-resnet")
    emb = embed_dataset(dataset, model, RunContext(cache_dir, progress=False))
    stages = embed_dataset(dataset, model, RunContext(cache_dir, progress=False), output="stages")
    return emb.identities, stages.embeddings, sdd_pseudo_labels(emb.embeddings, emb.identities).labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cache_dir = resolve_cache_dir(args.cache_dir)
    identities, features, labels = split_arrays("devtrain", cache_dir)
    _, test_features, test_labels = split_arrays("devtest", cache_dir)
    scored = np.isfinite(test_labels)
    people = np.unique(identities)
    rng = np.random.default_rng(0)
    print("| devtrain identities used | labelled training images (mean) | label agreement on devtest, "
          "mean +- sd |\n|---:|---:|---:|")
    for fraction in FRACTIONS:
        rhos, sizes = [], []
        for _ in range(args.repeats if fraction < 1 else 1):
            chosen = rng.choice(people, int(round(len(people) * fraction)), replace=False)
            use = np.isin(identities, chosen) & np.isfinite(labels)
            head, _ = train_head(features[use], labels[use], TrainConfig(ensemble=1))
            rhos.append(spearmanr(predict_head(head, test_features)[scored], test_labels[scored])[0])
            sizes.append(int(use.sum()))
        print(f"| {fraction:.3g} | {np.mean(sizes):.0f} | {np.mean(rhos):.3f} +- {np.std(rhos):.3f} |", flush=True)


if __name__ == "__main__":
    main()
