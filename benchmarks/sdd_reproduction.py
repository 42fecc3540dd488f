"""How closely a retraining reproduces the shipped SDD-FIQA model, on this CPU.

Retrains the LFW peopleDevTest model twice with the documented command
(``train_method(SDDLabels(), ...)`` with its defaults), then prints

* whether the two retrainings are bitwise identical (same machine),
* the largest weight difference to the shipped checkpoint,
* the Spearman and Pearson correlation of retrained and shipped predictions
  on held-out people (every fourth peopleDevTrain person with >= 2 images,
  <= 20 images each: 1,318 images, the test suite's ``lfw_heldout`` set),
* the AOC each gives there (FMR 1e-2 with both policies, 1e-3 with the
  fixed threshold; the recomputed one is undefined at 1e-3 on so few images,
  fewer than 10 false matches being left at 95% discard), beside the mean
  and sd of a random quality's AOC over 20 seeds: the scale against which an
  AOC difference matters.

Run it under different numerical settings to see what they change, e.g.::

    .venv/bin/python benchmarks/sdd_reproduction.py
    MKL_CBWR=COMPATIBLE .venv/bin/python benchmarks/sdd_reproduction.py --keep /tmp/cbwr.pt
    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2 \\
        .venv/bin/python benchmarks/sdd_reproduction.py --against /tmp/cbwr.pt

(``--against`` compares with another retrained checkpoint instead of the
shipped one; ``--keep`` saves this run's retrained checkpoint.)  Each run
uses its own cache folder unless ``--cache-dir`` is given, so features are
computed under the settings of that run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import identity_subset, load_dataset

from fiqa_bench.metrics import all_vs_all, evrc
from fiqa_bench.metrics.summaries import aoc_or_nan
from fiqa_bench.pipeline.paths import default_data_root
from fiqa_bench.pipeline.embedding import embed_dataset
from fiqa_bench.recognition import create_model

POLICIES, FMRS = ("recomputed", "fixed"), (1e-2, 1e-3)
AOCS = (("recomputed", 1e-2), ("fixed", 1e-2), ("fixed", 1e-3))
SETTINGS = ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--against", type=Path, default=None, help="compare with this checkpoint, not the shipped one")
    parser.add_argument("--keep", type=Path, default=None, help="save the retrained checkpoint here")
    args = parser.parse_args()
    from fiqa_bench.method.learned import shipped_checkpoint, train_method
    from fiqa_bench.methods.sdd import SDDFIQA, SDDLabels

    root = default_data_root()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="sdd-repro-"))
    work = Path(tempfile.mkdtemp(prefix="sdd-repro-out-"))
    devtest = load_dataset("lfw", root, "devtest")
    heldout = identity_subset(load_dataset("lfw", root, "devtrain"), every=4, min_images=2, max_per_identity=20)
    model = create_model("dlib-resnet")
    emb = embed_dataset(heldout, model, RunContext(cache, progress=False))
    stages = embed_dataset(heldout, model, RunContext(cache, progress=False), output="stages")
    ok = ~emb.failed

    paths, seconds = [], []
    for i in range(2):
        t0 = time.perf_counter()
        paths.append(work / f"retrained-{i}.pt")
        train_method(SDDLabels(), devtest, "dlib-resnet", RunContext(cache, progress=False), paths[-1])
        seconds.append(time.perf_counter() - t0)
    first, second = (torch.load(p, weights_only=True)["state_dict"] for p in paths)
    reference_path = args.against or shipped_checkpoint("sdd", "lfw:devtest")
    reference = torch.load(reference_path, weights_only=True)["state_dict"]
    bitwise = all(torch.equal(first[k], second[k]) for k in first)
    max_diff = max(float((first[k] - reference[k]).abs().max()) for k in first)

    ours = SDDFIQA(paths[0]).score(stages.embeddings)[ok]
    theirs = SDDFIQA(reference_path).score(stages.embeddings)[ok]
    comps = all_vs_all(emb.embeddings[ok], emb.identities[ok])
    aocs = {}
    for name, q in (("retrained", ours), ("reference", theirs)):
        result = evrc(comps, q, fmrs=FMRS, policies=POLICIES)
        aocs[name] = {(p, f): aoc_or_nan(result.get(p, f)) for p, f in AOCS}
    rng = np.random.default_rng(0)
    band: dict[tuple[str, float], list[float]] = {k: [] for k in AOCS}
    for _ in range(20):
        result = evrc(comps, rng.random(int(ok.sum())), fmrs=FMRS, policies=POLICIES)
        for p, f in band:
            band[(p, f)].append(aoc_or_nan(result.get(p, f)))

    print(f"CPU: {_cpu()}; torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}; "
          + ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in SETTINGS))
    print(f"held-out: {int(ok.sum())} images of {len(set(emb.identities[ok]))} people; "
          f"{comps.n_genuine} genuine / {comps.n_impostor} impostor comparisons")
    print(f"training: {seconds[0]:.1f} s, {seconds[1]:.1f} s (the first includes devtest features)")
    print(f"two retrainings bitwise identical: {bitwise}")
    print(f"reference: {reference_path.name}; largest weight difference {max_diff:.4f}")
    print(f"predictions on held-out people: Spearman {spearmanr(ours, theirs)[0]:.4f}, "
          f"Pearson {pearsonr(ours, theirs)[0]:.4f}")
    print()
    print("| policy | FMR | AOC retrained | AOC reference | difference | random AOC mean | random AOC sd |")
    print("|---|---|---|---|---|---|---|")
    for (p, f), value in aocs["retrained"].items():
        other, rand = aocs["reference"][(p, f)], np.array(band[(p, f)])
        print(f"| {p} | {f:g} | {value:.4f} | {other:.4f} | {value - other:+.4f} | "
              f"{rand.mean():.4f} | {rand.std():.4f} |")
    if args.keep:
        shutil.copy(paths[0], args.keep)


if __name__ == "__main__":
    main()
