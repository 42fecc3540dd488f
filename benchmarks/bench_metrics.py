"""Speed and memory of the evaluation engine at LFW all-vs-all scale, side by side.

Measured in one run, on one machine:

(a) LFW all-vs-all from cached embeddings (13,233 images, 87,549,528
    comparisons): making the comparisons, then EVRC for FMR in {1e-2, 1e-3,
    1e-4}, both threshold policies, 96 discard points (0, 0.01, ..., 0.95),
    for two quality arrays: ``random`` (seeded uniform) and ``typicality``
    (minus an image's mean cosine to all others: low quality = high impostor
    scores, the adversarial case for the threshold pool).
(b) The ``recomputed`` policy against the obvious implementation: at every
    discard point, filter the remaining impostor comparisons and take the
    order statistic (``np.partition``) per FMR.  Same tie rules, so the
    outputs are compared for equality.
(c) The ``fixed`` EDC from per-image qualities and 20 million comparisons
    against the reference ``edc.py`` of dasec/quality-assessment-evaluation
    (pair quality = ``np.minimum``, ``np.argsort``, its ``_compute_edc``),
    which is imported from ``--edc-py`` (not part of this repository); the
    outputs are compared for equality.

Without LFW embeddings (no ``--cache-dir``, or loading fails) synthetic
embeddings of the same size (13,233 x 128, 5,749 identities) are used and
the table says so.  Peak memory is the tracemalloc peak of the step (numpy
allocations, including arrays already held, e.g. the 0.7 GB of comparisons
and the inputs of (c)), and the part of it the step itself added; the
process's max RSS is printed at the end.

Usage::

    python benchmarks/bench_metrics.py --cache-dir /tmp/fcache [--edc-py /tmp/ref/edc.py] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.metrics import all_vs_all, edc_steps_from_samples, evrc  # noqa: E402

FMRS = (1e-2, 1e-3, 1e-4)
D = np.arange(96) / 100


def measure(fn: Callable[[], object]) -> tuple[object, float, tuple[float, float]]:
    """(result, seconds, (peak GB, peak GB above what was held when the phase began)) of ``fn()``."""
    tracemalloc.reset_peak()
    held = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    out = fn()
    sec = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    return out, sec, (peak / 1e9, (peak - held) / 1e9)


def load_embeddings(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    if args.cache_dir and not args.synthetic:
        try:
            from fiqa_bench.data import load_dataset
            from fiqa_bench.pipeline.embedding import embed_dataset
            from fiqa_bench.recognition import create_model

            root = Path(args.data_root) if args.data_root else None
            if root is None:
                from fiqa_bench.pipeline.paths import default_data_root

                root = default_data_root()
            ds = load_dataset("lfw", root, "all")
            e = embed_dataset(ds, create_model("dlib-resnet"), RunContext(Path(args.cache_dir), progress=False))
            return np.asarray(e.embeddings), np.asarray(e.identities), "LFW, dlib-resnet embeddings (cached)"
        except (OSError, ValueError, KeyError, ImportError, RuntimeError) as exc:
            print(f"LFW embeddings unavailable ({type(exc).__name__}: {exc}); using synthetic ones", file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    sizes = np.ones(5749, dtype=np.int64)
    extra = rng.choice(5749, 13233 - 5749, p=np.arange(5749, 0, -1) ** 2.0 / np.sum(np.arange(5749, 0, -1) ** 2.0))
    sizes += np.bincount(extra, minlength=5749)
    ids = np.repeat(np.arange(5749), sizes)
    e = rng.normal(size=(5749, 128))[ids] + 1.2 * rng.normal(size=(13233, 128))
    e = (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)
    return e, ids, "synthetic embeddings (13,233 x 128, 5,749 identities)"


def typicality(e: np.ndarray) -> np.ndarray:
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    mean_cos = (u @ u.sum(axis=0) - 1.0) / (len(u) - 1)
    return -mean_cos.astype(np.float64)


def obvious_recomputed(comp, q: np.ndarray) -> dict:
    """The obvious recomputed-threshold EVRC (images axis): filter, then order statistic, per point."""
    ip, gp = comp.impostor_pairs, comp.genuine_pairs
    iq = np.minimum(q[ip[:, 0]], q[ip[:, 1]])
    gq = np.minimum(q[gp[:, 0]], q[gp[:, 1]])
    qs = np.sort(q)
    n = len(q)
    fnmr = np.full((len(D), len(FMRS)), np.nan)
    star = np.full((len(D), len(FMRS)), np.nan)
    for j, phi in enumerate(D):
        m = int(np.floor(phi * n))  # images that may be discarded: m / n <= phi
        m = m + 1 if (m + 1) / n <= phi else m
        m = m - 1 if m / n > phi else m
        cut = qs[m] if m < n else np.inf  # keep quality >= the (m+1)-th lowest: whole tie groups
        rem = comp.impostor_scores[iq >= cut]
        g = comp.genuine_scores[gq >= cut]
        for fi, f in enumerate(FMRS):
            k = int(np.floor(f * len(rem)))
            k = k + 1 if (k + 1) / len(rem) <= f else k
            k = k - 1 if k / len(rem) > f else k
            if k < 10:
                continue
            s = np.partition(rem, len(rem) - k - 1)[len(rem) - k - 1]
            star[j, fi] = s
            fnmr[j, fi] = np.count_nonzero(g <= s) / len(g)
    return {"fnmr": fnmr, "star": star}


def load_edc_py(path: str):
    spec = importlib.util.spec_from_file_location("reference_edc", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM; Python {platform.python_version()}, numpy {np.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", help="fiqa-bench embedding cache holding LFW dlib-resnet embeddings")
    ap.add_argument("--data-root", help="dataset root with lfw/ (default: fiqa_bench.pipeline.paths.default_data_root())")
    ap.add_argument("--synthetic", action="store_true", help="use synthetic embeddings even if LFW is available")
    ap.add_argument("--skip-baseline", action="store_true", help="skip (b), the ~2 minute obvious loop")
    ap.add_argument("--edc-py", help="path to the reference edc.py for (c); skipped when absent")
    ap.add_argument("--n-edc", type=int, default=20_000_000, help="comparisons for (c)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    e, ids, source = load_embeddings(args)
    rows: list[tuple[str, str, float, tuple[float, float]]] = []
    tracemalloc.start()

    comp, t_gen, m_gen = measure(lambda: all_vs_all(e, ids))
    n_cmp = comp.n_genuine + comp.n_impostor
    rows.append(("(a)", f"all-vs-all comparisons ({comp.n_genuine:,} genuine + {comp.n_impostor:,} impostor, float32)", t_gen, m_gen))
    rng = np.random.default_rng(args.seed)
    qualities = {"random": rng.random(len(e)), "typicality": typicality(e)}
    results = {}
    for name, q in qualities.items():
        r, t, m = measure(lambda q=q: evrc(comp, q, fmrs=FMRS, axis="images", discard_fractions=D))
        results[name] = r
        rows.append(("(a)", f"EVRC, {name} quality: images axis, both policies, 3 FMR x 96 points", t, m))
        rows.append(("(a)", f"**total: comparisons + EVRC ({name} quality)**", t_gen + t, (max(m_gen[0], m[0]), max(m_gen[0], m[0]))))
    _, t, m = measure(lambda: evrc(comp, qualities["typicality"], fmrs=FMRS, axis="comparisons", discard_fractions=D))
    rows.append(("(a)", "EVRC, typicality quality: comparisons axis, both policies, 3 FMR x 96 points", t, m))

    check_b = ""
    if not args.skip_baseline:
        q = qualities["typicality"]
        ours, t_ours, m_ours = measure(lambda: evrc(comp, q, fmrs=FMRS, policies="recomputed", discard_fractions=D))
        base, t_base, m_base = measure(lambda: obvious_recomputed(comp, q))
        rows.append(("(b)", "recomputed policy, 3 FMR x 96 points: this engine", t_ours, m_ours))
        rows.append(("(b)", "recomputed policy, 3 FMR x 96 points: obvious filter + order statistic per point", t_base, m_base))
        fn = np.stack([c.fnmr for c in ours.curves], axis=1)
        thr = np.stack([c.threshold for c in ours.curves], axis=1)
        same_fnmr = np.array_equal(fn, base["fnmr"], equal_nan=True)
        same_thr = np.array_equal(np.isnan(thr), np.isnan(base["star"])) and bool(
            np.all(thr[~np.isnan(thr)] == [float(np.nextafter(np.float32(s), np.float32(np.inf))) for s in base["star"][~np.isnan(base["star"])]])
        )
        check_b = (f"(b) speed-up {t_base / t_ours:.0f}x; FNMR identical: {same_fnmr}; thresholds identical: {same_thr}; "
                   f"insufficient points: {int(np.isnan(fn).sum())} of {fn.size}")

    check_c = ""
    if args.edc_py:
        ref = load_edc_py(args.edc_py)
        rng_c = np.random.default_rng(args.seed + 1)
        n_img = len(e)
        pairs = rng_c.integers(0, n_img, (args.n_edc, 2)).astype(np.uint16 if n_img <= 65536 else np.int64)
        scores = np.round(rng_c.normal(0.5, 0.15, args.n_edc), 3)  # ties
        q_img = np.round(rng_c.random(n_img), 2)  # 101 quality levels: ties
        t = 0.4

        def reference():
            pq = np.minimum(q_img[pairs[:, 0]], q_img[pairs[:, 1]])
            order = np.argsort(pq)
            return ref._compute_edc(ref.EdcErrorType.FNMR, pq[order], scores[order], t)

        out_ref, t_ref, m_ref = measure(reference)
        out_ours, t_c, m_c = measure(lambda: edc_steps_from_samples(scores, pairs, q_img, t))
        rows.append(("(c)", f"fixed EDC, {args.n_edc:,} comparisons, per-image quality: reference edc.py", t_ref, m_ref))
        rows.append(("(c)", f"fixed EDC, {args.n_edc:,} comparisons, per-image quality: this engine", t_c, m_c))
        d_ref, e_ref = out_ref["discard_fractions"], out_ref["error_fractions"]
        if len(d_ref) == len(out_ref["discard_counts"]) + 1:  # edc.py's appended plotting point (1, 0)
            d_ref, e_ref = d_ref[:-1], e_ref[:-1]
        equal = (np.array_equal(out_ours.discard_counts, out_ref["discard_counts"])
                 and np.max(np.abs(out_ours.error_fractions - e_ref)) <= 1e-12
                 and np.max(np.abs(out_ours.discard_fractions - d_ref)) <= 1e-12)
        check_c = f"(c) speed-up {t_ref / t_c:.1f}x; {len(d_ref)} step points, equal to edc.py (1e-12): {equal}"

    print(f"\nData: {source}; {len(e):,} images, {n_cmp:,} comparisons")
    print(f"Machine: {machine()}")
    print(f"Command: python {' '.join(sys.argv)}\n")
    print("| | step | time (s) | peak memory (GB) | of which added by the step (GB) |")
    print("|---|---|---:|---:|---:|")
    for tag, what, sec, (peak, added) in rows:
        print(f"| {tag} | {what} | {sec:.2f} | {peak:.2f} | {added:.2f} |")
    print()
    for line in (check_b, check_c):
        if line:
            print(line)
    rec = results["random"].get("recomputed", 1e-3)
    print(f"sanity: random quality, recomputed, FMR 1e-3: FNMR {rec.fnmr[0]:.4f} at 0 -> {rec.fnmr[-1]:.4f} at 0.95 "
          f"({int(rec.insufficient.sum())} insufficient points)")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
