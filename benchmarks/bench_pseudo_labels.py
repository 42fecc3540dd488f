"""Speed, memory and agreement of :func:`fiqa_bench.methods.sdd.labels.sdd_pseudo_labels`.

Two Markdown tables:

1. Against the official SDD-FIQA label generator (Tencent/TFace
   ``quality/generate_pseudo_labels/gen_pseudo_labels.py``), on the same
   synthetic 20,000 x 512 float32 embeddings (2,000 identities x 10 images,
   known per-sample noise ``sigma``), m=24, K=12.  The official file is *not*
   part of this repository: export it from a checkout elsewhere, e.g.::

       git --git-dir=/path/to/TFace/.git show HEAD:quality/generate_pseudo_labels/gen_pseudo_labels.py \\
           > /tmp/tface/gen_pseudo_labels.py

   Its ``__main__`` block hard-codes MS1M paths, so the benchmark writes the
   inputs that block reads (a ``DATA.label`` list of ``/<identity>/<image>``
   names and a ``.npy`` feature matrix) into a temporary folder and calls
   its functions in the same order as that block (``buildDict_people`` once;
   per repetition ``gen_samepeople_Similarity``, ``gen_diffpeople_Similarity``,
   ``gen_distance``, ``cal_idscore``, ``norm_labels``; then the mean), with
   ``random.seed(0)`` added (the script never seeds).  It imports
   ``seaborn`` without using it; when seaborn is not installed an empty
   stand-in module is registered so that the import succeeds.  Progress bars
   are silenced with ``TQDM_DISABLE=1``.  Without ``--official`` (or if the
   file is missing) the literal per-sample re-implementation of
   ``tests/test_pseudo_labels.py`` is timed instead, and labelled so.

2. Scaling at 100k .. 1M x 512 (10 images per identity), K=12: wall time and
   peak memory, each size in a fresh subprocess (peak RSS of the whole
   process during the call, which includes the float32 embedding matrix,
   and the tracemalloc peak of the call itself in a second, traced call).

Usage::

    python benchmarks/bench_pseudo_labels.py [--official /tmp/tface/gen_pseudo_labels.py]
        [--sizes 100000,250000,500000,1000000] [--repeats 5] [--time-repeats 2] [--skip-official]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fiqa_bench.methods.sdd.labels import sdd_pseudo_labels, synthetic_identity_embeddings  # noqa: E402


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def load_official(path: Path) -> types.ModuleType:
    os.environ["TQDM_DISABLE"] = "1"
    if importlib.util.find_spec("seaborn") is None:
        sys.modules["seaborn"] = types.ModuleType("seaborn")  # imported, never used by the script
    spec = importlib.util.spec_from_file_location("tface_gen_pseudo_labels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def run_official(module: types.ModuleType, emb: np.ndarray, ids: np.ndarray, k: int,
                 workdir: Path, seed: int = 0) -> tuple[np.ndarray, float, dict[str, float]]:
    """The official ``__main__`` sequence on our data; labels in input order, seconds, stage times."""
    names = [f"/id{g:05d}/img{i:07d}.jpg" for i, g in enumerate(ids)]
    (workdir / "DATA.label").write_text("".join(n + "\n" for n in names))
    np.save(workdir / "feats.npy", emb)
    random.seed(seed)  # the official script never seeds its sampler; fixed here for repeatability
    stages = {"positives": 0.0, "negatives": 0.0, "WD + files + scaling": 0.0}
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        feats_dict, people, people_name, feats = module.buildDict_people(
            str(workdir / "DATA.label"), str(workdir / "feats.npy"))
        info = open(workdir / "info.txt", "w")
        scores = np.zeros((len(people_name), k))
        for rep in range(k):
            t = time.perf_counter()
            pos, n_pos = module.gen_samepeople_Similarity(feats_dict, people, people_name, feats, info)
            t1 = time.perf_counter()
            neg = module.gen_diffpeople_Similarity(feats_dict, people, people_name, feats, n_pos, info)
            t2 = time.perf_counter()
            module.gen_distance(pos, neg, str(workdir / "w.txt"))
            id_score = module.cal_idscore(str(workdir / "w.txt"))
            paths, q = module.norm_labels("", str(workdir / "w.txt"), str(workdir / "res.txt"), id_score)
            scores[:, rep] = q
            stages["positives"] += t1 - t
            stages["negatives"] += t2 - t1
            stages["WD + files + scaling"] += time.perf_counter() - t2
        info.close()
    seconds = time.perf_counter() - t0
    by_name = dict(zip(paths, scores.mean(axis=1)))  # the official output order is by identity
    return np.array([by_name[n] for n in names]), seconds, stages


def run_literal(emb: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_pseudo_labels import official_style_labels

    t0 = time.perf_counter()
    labels = official_style_labels(emb, ids, m=24, repetitions=k, seed=0)
    return labels, time.perf_counter() - t0


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def table_official(args: argparse.Namespace) -> None:
    emb, ids, sigma = synthetic_identity_embeddings(2000, 10, dim=512, seed=1)
    load = os.getloadavg()[0]
    rows = []
    ours_t, ours = best_time(lambda: sdd_pseudo_labels(emb, ids, m=24, repetitions=12, seed=0), args.repeats)
    ind_t, ind = best_time(lambda: sdd_pseudo_labels(emb, ids, m=24, repetitions=12, seed=0,
                                                     negatives="independent"), 1)
    official = Path(args.official) if args.official else None
    if official is not None and official.is_file():
        module = load_official(official)
        with tempfile.TemporaryDirectory(prefix="sdd_official_") as d:
            ref, ref_t, stages = run_official(module, emb, ids, 12, Path(d))
        ref_name = f"official `gen_pseudo_labels.py` ({official})"
        stage_txt = ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
    else:
        ref, ref_t = run_literal(emb, ids, 12)
        ref_name = "official-style literal re-implementation (official file not given)"
        stage_txt = ""
    rows.append((ref_name, ref_t, 1.0, spearman(ref, -sigma), 1.0))
    rows.append(("fiqa-bench, negatives=pooled (default)", ours_t, ref_t / ours_t,
                 spearman(ours.labels, -sigma), spearman(ours.labels, ref)))
    rows.append(("fiqa-bench, negatives=independent", ind_t, ref_t / ind_t,
                 spearman(ind.labels, -sigma), spearman(ind.labels, ref)))
    print("\n### SDD-FIQA pseudo-labels vs the official generator: 20,000 x 512, 2,000 ids x 10, m=24, K=12\n")
    print(f"load average at start: {load:.2f} (2 cores); fiqa-bench time = best of {args.repeats}\n")
    print("| implementation | seconds | speed-up | Spearman(labels, -sigma) | Spearman vs reference |")
    print("|---|---:|---:|---:|---:|")
    for name, t, sp, rho, agree in rows:
        print(f"| {name} | {t:.3f} | {sp:.0f}x | {rho:.4f} | {agree:.4f} |")
    if stage_txt:
        print(f"\nofficial stages over 12 repetitions: {stage_txt}")


def _rss_now_and_peak() -> tuple[int, int]:
    """Current and peak resident set size in bytes (VmRSS, VmHWM of /proc/self/status)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def worker(n: int, k: int, traced: bool, time_repeats: int) -> None:
    """One size, in its own process: time, peak RSS during the call, tracemalloc peak of the call."""
    emb, ids, sigma = synthetic_identity_embeddings(n // 10, 10, dim=512, seed=1)
    reset = _reset_peak_rss()
    rss_before, _ = _rss_now_and_peak()
    t0 = time.perf_counter()
    res = sdd_pseudo_labels(emb, ids, m=24, repetitions=k, seed=0)
    seconds = time.perf_counter() - t0
    rss_peak = _rss_now_and_peak()[1] if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for _ in range(time_repeats - 1):  # best of several: the 2 cores may be shared
        del res
        t0 = time.perf_counter()
        res = sdd_pseudo_labels(emb, ids, m=24, repetitions=k, seed=0)
        seconds = min(seconds, time.perf_counter() - t0)
    traced_peak = None
    if traced:
        del res
        tracemalloc.start()
        res = sdd_pseudo_labels(emb, ids, m=24, repetitions=k, seed=0)
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(json.dumps({"n": n, "seconds": seconds, "emb_bytes": emb.nbytes, "rss_before": rss_before,
                      "rss_peak": rss_peak, "peak_reset": reset, "traced_peak": traced_peak,
                      "rho": spearman(res.labels, -sigma), "load": os.getloadavg()[0]}))


def table_scaling(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--worker", str(n), "--k", "12", "--time-repeats", str(args.time_repeats),
               "--traced" if args.traced else "--no-traced"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("\n### Scaling: N x 512 float32, 10 images per identity, m=24, K=12, one fresh process per size\n")
    print(f"seconds = best of {args.time_repeats} calls.")
    print("Peak RSS = the process's peak resident memory during the call (VmHWM reset just before it),"
          " embedding matrix included; 'own peak' = tracemalloc peak of a second, traced call.\n")
    print("| N | seconds | us / sample | embeddings (MiB) | RSS before call (MiB) | peak RSS (MiB) "
          "| peak RSS / embeddings | own peak (MiB) | Spearman(labels, -sigma) | load avg after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    mib = 1 << 20
    for r in results:
        traced = "-" if r["traced_peak"] is None else f"{r['traced_peak'] / mib:.0f}"
        print(f"| {r['n']:,} | {r['seconds']:.1f} | {1e6 * r['seconds'] / r['n']:.1f} | {r['emb_bytes'] / mib:.0f} "
              f"| {r['rss_before'] / mib:.0f} | {r['rss_peak'] / mib:.0f} | {r['rss_peak'] / r['emb_bytes']:.2f}x "
              f"| {traced} | {r['rho']:.4f} | {r['load']:.2f} |")
    if len(results) >= 2:
        x = np.log([r["n"] for r in results])
        y = np.log([r["seconds"] for r in results])
        slope = np.polyfit(x, y, 1)[0]
        print(f"\nlog-log slope of time vs N: {slope:.2f} (1 = linear)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", default="/tmp/tface/gen_pseudo_labels.py",
                    help="path of the exported official gen_pseudo_labels.py")
    ap.add_argument("--sizes", default="100000,250000,500000,1000000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-official", action="store_true")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--traced", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure the call's tracemalloc peak (a second call per size)")
    ap.add_argument("--time-repeats", type=int, default=2, help="timed calls per size (best is kept)")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=12, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.k, args.traced, args.time_repeats)
        return
    if not args.skip_official:
        table_official(args)
    if not args.skip_scaling:
        table_scaling(args)


if __name__ == "__main__":
    main()
