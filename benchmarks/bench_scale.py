"""Labels and the EVRC study at MS1M-like scale on one machine: 100k .. 1M synthetic 512-d embeddings.

For each size N (10 images per identity), in a fresh subprocess so that its
peak memory is its own:

1. synthetic embeddings: an identity centre per person plus per-image noise of
   known size ``sigma`` (uniform in [0.3, 4.0]: hard enough that genuine and impostor
   scores overlap, so the FNMR is not 0 and the AOC is defined), float32, L2-normalised;
   the "true" quality is ``-sigma``;
2. SDD-FIQA pseudo-labels (:func:`fiqa_bench.methods.sdd.labels.sdd_pseudo_labels`,
   m = 24, K = 12, seed 0) over all N;
3. the comparisons of the EVRC study: every genuine pair (45 per identity,
   4.5 N) and 10 N impostor pairs drawn uniformly (seeded) and scored
   (:func:`fiqa_bench.metrics.comparisons.comparisons_from_pairs`) -- an
   all-vs-all at 1M would be 5e11 comparisons;
4. the EVRC (:func:`fiqa_bench.metrics.evrc`) of the pseudo-labels as
   quality, FMR 1e-2/1e-3/1e-4, both threshold policies, 96 discard points,
   and the paper-compatible AOC of each curve.

It prints a Markdown table: seconds per step, the step total, the process's
peak RSS (``ru_maxrss``, which includes the embedding matrix and everything
held), and time and memory per 100k images relative to the smallest size
(1.00 = linear growth).  Plus the AOCs at 1M as a sanity check (labels that
track ``sigma`` must give AOCs well above 0).

Usage::

    python benchmarks/bench_scale.py [--sizes 100000,250000,500000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PER_IDENTITY = 10
DIM = 512
IMPOSTORS_PER_IMAGE = 10


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(embeddings (n, 512) float32, identities (n,), sigma (n,))``, identities contiguous."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n // PER_IDENTITY), PER_IDENTITY)
    sigma = rng.uniform(0.3, 4.0, n).astype(np.float32)
    emb = np.empty((n, DIM), np.float32)
    block = 100_000
    for start in range(0, n, block):
        stop = min(start + block, n)
        centres = rng.standard_normal(((stop - start) // PER_IDENTITY, DIM), dtype=np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        noise = rng.standard_normal((stop - start, DIM), dtype=np.float32) / np.sqrt(DIM, dtype=np.float32)
        emb[start:stop] = np.repeat(centres, PER_IDENTITY, axis=0) + sigma[start:stop, None] * noise
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb, ids, sigma


def pairs_for(ids: np.ndarray, seed: int = 1) -> np.ndarray:
    """Every genuine pair (identities are contiguous blocks of 10) and 10 N seeded impostor pairs."""
    n = len(ids)
    a, b = np.triu_indices(PER_IDENTITY, 1)
    starts = np.arange(0, n, PER_IDENTITY)[:, None]
    genuine = np.stack([(starts + a).ravel(), (starts + b).ravel()], axis=1)
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, IMPOSTORS_PER_IMAGE * n)
    second = rng.integers(0, n, IMPOSTORS_PER_IMAGE * n)
    keep = ids[first] != ids[second]
    impostor = np.stack([first[keep], second[keep]], axis=1)
    return np.concatenate([genuine, impostor]).astype(np.int64)


def one_size(n: int) -> dict:
    """Run the four steps for ``n`` images in this process; returns timings and peak memory."""
    from fiqa_bench.metrics import comparisons_from_pairs, evrc
    from fiqa_bench.metrics.summaries import aoc_or_nan
    from fiqa_bench.methods.sdd.labels import sdd_pseudo_labels

    times = {}
    start = time.perf_counter()
    emb, ids, sigma = synthetic(n)
    times["synthetic data"] = time.perf_counter() - start
    start = time.perf_counter()
    labels = sdd_pseudo_labels(emb, ids, m=24, repetitions=12, seed=0).labels
    times["pseudo-labels (m 24, K 12)"] = time.perf_counter() - start
    start = time.perf_counter()
    comps = comparisons_from_pairs(emb, pairs_for(ids), ids, dtype=np.float32)
    times["comparisons (score pairs)"] = time.perf_counter() - start
    start = time.perf_counter()
    result = evrc(comps, labels)
    aocs = {f"{c.policy}@{c.fmr_target:g}": aoc_or_nan(c) for c in result.curves}
    times["EVRC + AOC (3 FMRs x 2 policies)"] = time.perf_counter() - start
    return {"n": n, "times": times, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "n_genuine": int(comps.n_genuine), "n_impostor": int(comps.n_impostor), "aoc": aocs,
            "label_sigma_spearman": float(np.corrcoef(np.argsort(np.argsort(labels)),
                                                      np.argsort(np.argsort(-sigma)))[0, 1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,250000,500000,1000000")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args.one)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = os.getloadavg()[0]
    rows = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"{n}: {rows[-1]['times']}, {rows[-1]['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    steps = list(rows[0]["times"])
    base = rows[0]
    base_total = sum(base["times"].values()) - base["times"]["synthetic data"]
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, 1-minute load before "
          f"{load_before:.2f}, after {os.getloadavg()[0]:.2f}\n")
    print("| images | " + " | ".join(steps) + " | total without data (s) | peak RSS (MB) | "
          "time per 100k vs smallest | RSS per 100k vs smallest | genuine | impostor |")
    print("|---:|" + "---:|" * (len(steps) + 6))
    for row in rows:
        total = sum(row["times"].values()) - row["times"]["synthetic data"]
        scale = row["n"] / base["n"]
        print(f"| {row['n']:,} | " + " | ".join(f"{row['times'][s]:.1f}" for s in steps)
              + f" | {total:.1f} | {row['peak_rss_mb']:.0f} | {total / base_total / scale:.2f} | "
              f"{row['peak_rss_mb'] / base['peak_rss_mb'] / scale:.2f} | {row['n_genuine']:,} | {row['n_impostor']:,} |")
    last = rows[-1]
    print(f"\nAt {last['n']:,}: AOC of the pseudo-labels as quality {json.dumps({k: round(v, 4) for k, v in last['aoc'].items()})}; "
          f"Spearman(labels, -sigma) = {last['label_sigma_spearman']:.3f}")


if __name__ == "__main__":
    main()
