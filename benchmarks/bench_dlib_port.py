"""Throughput and agreement of the PyTorch port of dlib's face ResNet vs dlib itself.

On the same N LFW chips (made with dlib: frontal detector, 5-point landmarks,
``get_face_chip(size=150, padding=0.25)``) it measures, with 2 threads:

* images/s of :class:`fiqa_bench.recognition.dlib_resnet.DlibResNet`
  (preprocess + forward under ``torch.inference_mode``) at several batch sizes;
* images/s of ``dlib.face_recognition_model_v1.compute_face_descriptor``
  one chip at a time and with the whole list (dlib batches 16 internally);
* max ``|1 - cosine|`` between the port's and dlib's descriptors;
* the .dat parse time and the full model load time (sha256 + parse + build).

Usage::

    python benchmarks/bench_dlib_port.py [--n 256] [--batch-sizes 1,16,64] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_chips(n: int) -> np.ndarray:
    """``n`` LFW chips (uint8, (n, 150, 150, 3)), every k-th image of the sorted file list."""
    import dlib
    from PIL import Image

    from fiqa_bench.pipeline.paths import default_data_root, dlib_model_file

    root = default_data_root() / "lfw" / "images_deepfunneled"
    files = sorted(root.glob("*/*.jpg"))
    if len(files) < n:
        raise SystemExit(f"need {n} LFW images under {root}, found {len(files)}")
    step = len(files) // n
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_file("shape_predictor_5_face_landmarks.dat")))
    chips = []
    for f in files[::step][:n]:
        img = np.asarray(Image.open(f).convert("RGB"))
        dets = detector(img, 0)
        box = dets[0] if len(dets) else dlib.rectangle(70, 70, 180, 180)
        chips.append(dlib.get_face_chip(img, predictor(img, box), size=150, padding=0.25))
    return np.stack(chips)


def rate(fn: Callable[[], object], n_images: int, repeats: int) -> float:
    """Best images/s over ``repeats`` runs of ``fn`` (which processes ``n_images``)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n_images / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="number of LFW chips")
    ap.add_argument("--batch-sizes", default="1,16,64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats for the port (best is kept)")
    args = ap.parse_args()

    import dlib
    import torch

    from fiqa_bench.pipeline.paths import dlib_model_file
    from fiqa_bench.recognition.dlib_resnet import load_dlib_resnet
    from fiqa_bench.recognition.dlib_serialization import load_dlib_resnet_weights

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    dat = dlib_model_file("dlib_face_recognition_resnet_model_v1.dat")

    t0 = time.perf_counter()
    load_dlib_resnet_weights(dat)
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = load_dlib_resnet(dat)  # sha256 + parse + build the network
    load_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    chips = make_chips(args.n)
    chip_s = time.perf_counter() - t0
    n = len(chips)

    def port(bs: int) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, n, bs):
                x = model.preprocess(torch.from_numpy(chips[i : i + bs]))
                out.append(model(x).numpy())
        return np.concatenate(out)

    port(16)  # warm-up (oneDNN primitive creation)
    rows: list[tuple[str, float]] = []
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        port(bs)
        rows.append((f"port, batch {bs}", rate(lambda: port(bs), n, args.repeats)))

    rec = dlib.face_recognition_model_v1(str(dat))
    t0 = time.perf_counter()
    ref_single = np.array([np.asarray(rec.compute_face_descriptor(c)) for c in chips])
    rows.append(("dlib, one chip per call", n / (time.perf_counter() - t0)))
    t0 = time.perf_counter()
    ref_list = np.array([np.asarray(d) for d in rec.compute_face_descriptor(list(chips))])
    rows.append(("dlib, list of chips", n / (time.perf_counter() - t0)))

    emb = port(64).astype(np.float64)
    worst = 0.0
    for ref in (ref_single, ref_list):
        cos = (emb * ref).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
        worst = max(worst, float(np.abs(1 - cos).max()))

    dlib_best = max(r for name, r in rows if name.startswith("dlib"))
    print(f"\n{n} LFW chips, {args.threads} threads, torch {torch.__version__}, dlib {dlib.__version__} "
          f"(chips made in {chip_s:.1f} s)\n")
    print("| pipeline | images/s | vs best dlib |")
    print("|---|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r:.1f} | {r / dlib_best:.2f}x |")
    print(f"\nmax |1 - cosine| port vs dlib: {worst:.2e}")
    print(f".dat parse (read + parse, no conversion): {parse_s * 1000:.0f} ms")
    print(f"load_dlib_resnet (sha256 + parse + build): {load_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
