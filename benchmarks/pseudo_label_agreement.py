"""Do our SDD pseudo-labels agree with the official ones on real embeddings as well as official runs agree with each other?

On LFW peopleDevTrain (identities with at least two images: the official
code cannot take singletons) with dlib-resnet embeddings, m=24, K=12:
Spearman correlation between two official runs with different seeds, and
between ours (pooled negatives, the default, and independent) and each
official run.  Needs the official ``gen_pseudo_labels.py`` exported outside
the repository (see bench_pseudo_labels.py) and LFW embeddings in the cache.

    python benchmarks/pseudo_label_agreement.py [--official /tmp/tface/gen_pseudo_labels.py] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pseudo_labels import load_official, run_official, spearman  # noqa: E402

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import load_dataset  # noqa: E402
from fiqa_bench.pipeline.paths import default_data_root, resolve_cache_dir  # noqa: E402
from fiqa_bench.pipeline.embedding import embed_dataset  # noqa: E402
from fiqa_bench.methods.sdd.labels import sdd_pseudo_labels  # noqa: E402
from fiqa_bench.recognition import create_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default="/tmp/tface/gen_pseudo_labels.py")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--split", default="devtrain")
    args = ap.parse_args()
    dataset = load_dataset("lfw", default_data_root(), args.split)
    emb = embed_dataset(dataset, create_model("dlib-resnet"), RunContext(resolve_cache_dir(args.cache_dir), progress=False))
    ids = emb.identities
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    keep = counts[inverse] >= 2
    x, y = emb.embeddings[keep].astype(np.float32), inverse[keep]
    module = load_official(Path(args.official))
    official = []
    for seed in (0, 1):
        with tempfile.TemporaryDirectory() as tmp:
            labels, seconds, _ = run_official(module, x, y, 12, Path(tmp), seed=seed)
        official.append(labels)
        print(f"official run, seed {seed}: {seconds:.1f} s", file=sys.stderr)
    ours = {n: sdd_pseudo_labels(x, y, seed=0, negatives=n).labels for n in ("pooled", "independent")}
    print(f"LFW {args.split}, dlib-resnet, {len(x)} images of {len(set(y.tolist()))} identities with >= 2 images, "
          "m=24, K=12\n")
    print("| pair | Spearman |\n|---|---:|")
    print(f"| official seed 0 vs official seed 1 | {spearman(official[0], official[1]):.4f} |")
    for name, labels in ours.items():
        for seed, ref in enumerate(official):
            print(f"| ours ({name}) vs official seed {seed} | {spearman(labels, ref):.4f} |")


if __name__ == "__main__":
    main()
