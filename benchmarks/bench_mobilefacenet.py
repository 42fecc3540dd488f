"""Throughput of the PyTorch port of faceplugin's MobileFaceNet against onnxruntime, on the same LFW chips.

On the first N aligned LFW devtest chips (``arcface112`` template, from the
cache: :func:`fiqa_bench.pipeline.embedding.dataset_chips`; failed images left out) it
measures images/s, best of a few interleaved rounds, with 2 threads on each side:

* the port (:func:`fiqa_bench.recognition.mobilefacenet.load_mobilefacenet`:
  preprocess + forward under ``torch.inference_mode``, ``torch.set_num_threads``);
* onnxruntime (``intra_op_num_threads``, ``inter_op_num_threads=1``,
  preprocessing ``(x - 127.5) / 128`` in numpy inside the timed loop), on the
  file as exported (batch fixed at 1) and, for larger batches, on an
  in-memory copy whose batch dimension is free (:func:`dynamic_batch_copy`);
  each both as onnxruntime runs by default and with its
  ``session.set_denormal_as_zero`` option (flush denormals to zero: the
  file's tiny weights make denormal arithmetic, which is slow on x86; the
  port removes them when loading, see the module docstring);
* for reference (``--no-flushed`` to skip), onnxruntime on a copy of the
  file whose tiny weights are zeroed exactly as the port's are
  (:func:`flushed_copy`): the same arithmetic as the port, so the kernels
  themselves are compared.  The ratio column compares with the best
  onnxruntime run on the file itself, not on this copy.

It prints a Markdown table (images/s, ms per image, ratio to the best
onnxruntime configuration at the same batch size) and the agreement of the
port with onnxruntime on these chips (min cosine, max |difference|).

Usage::

    python benchmarks/bench_mobilefacenet.py [--images 512] [--batch-sizes 64,1] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH_DIM = "N"


def dynamic_batch_copy(data: bytes) -> bytes:
    """The serialised ONNX model ``data`` with a free batch dimension, for onnxruntime at batch > 1.

    The graph's declared inputs and outputs (those that are not initializers)
    get the symbolic first dimension ``N``, and the shape constant of each
    Reshape whose first entry is 1 (the export's ``[1, -1]``) becomes
    ``[0, -1]`` (0 copies the input's dimension).  Nothing else changes, so
    the arithmetic is that of the exported file.
    """
    model = onnx.load_model_from_string(data)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    for info in (*graph.input, *graph.output):
        if info.name not in initializers:
            info.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM  # replaces dim_value (a oneof)
    for node in graph.node:
        tensor = initializers.get(node.input[1]) if node.op_type == "Reshape" else None
        if tensor is not None:
            shape = numpy_helper.to_array(tensor).copy()
            if shape.ravel()[0] == 1:
                shape.ravel()[0] = 0
                tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
    return model.SerializeToString()


def flushed_copy(data: bytes, below: float) -> bytes:
    """The serialised ONNX model ``data`` with every float32 initializer value of magnitude below ``below``
    set to 0 (what :func:`~fiqa_bench.recognition.mobilefacenet.load_mobilefacenet` does to the weights),
    so that onnxruntime can be timed on the same arithmetic as the port."""
    model = onnx.load_model_from_string(data)
    for tensor in model.graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT:
            values = numpy_helper.to_array(tensor).copy()
            values[np.abs(values) < below] = 0
            tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    return model.SerializeToString()


def lfw_chips(n: int) -> np.ndarray:
    """The first ``n`` LFW devtest images as ``arcface112`` chips (cached), failures left out."""
    from fiqa_bench.pipeline.context import RunContext
    from fiqa_bench.data import Dataset, load_dataset
    from fiqa_bench.pipeline.paths import default_data_root, resolve_cache_dir
    from fiqa_bench.pipeline.embedding import dataset_chips

    devtest = load_dataset("lfw", default_data_root(), "devtest")
    dataset = Dataset("lfw:devtest[:n]", devtest.root, devtest.samples[:n])
    chips, failed, _ = dataset_chips(dataset, "arcface112", RunContext(resolve_cache_dir(), progress=False))
    return np.ascontiguousarray(chips[~failed])


def best_rates(pipelines: dict[tuple[str, int], Callable[[], object]], n_images: int,
               repeats: int) -> dict[tuple[str, int], float]:
    """Best images/s of each pipeline (which processes ``n_images``) over ``repeats`` rounds.

    Each pipeline runs once to warm up, then the rounds run every pipeline in
    turn, so that a change in the machine's load (a shared machine) touches
    all of them alike rather than whichever ran at the time.
    """
    for fn in pipelines.values():
        fn()
    best = dict.fromkeys(pipelines, float("inf"))
    for _ in range(repeats):
        for key, fn in pipelines.items():
            t0 = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - t0)
    return {key: n_images / seconds for key, seconds in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512, help="LFW devtest images (first N)")
    ap.add_argument("--batch-sizes", default="64,1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--flushed", action=argparse.BooleanOptionalAction, default=True,
                    help="also time onnxruntime on a copy whose tiny weights are zeroed as the port's are")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import onnxruntime as ort
    import torch

    from fiqa_bench.recognition.mobilefacenet import FLUSH_BELOW, default_model_path, load_mobilefacenet

    torch.set_num_threads(args.threads)
    chips = lfw_chips(args.images)
    n = len(chips)
    path = default_model_path()
    exported = path.read_bytes()
    dynamic = dynamic_batch_copy(exported)
    t0 = time.perf_counter()
    net = load_mobilefacenet()
    load_s = time.perf_counter() - t0

    def port(bs: int) -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([net(net.preprocess(torch.from_numpy(chips[i : i + bs]))).numpy()
                                   for i in range(0, n, bs)])

    def session(model: bytes, denormal_as_zero: bool) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.set_denormal_as_zero", "1" if denormal_as_zero else "0")
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def runtime(sess: ort.InferenceSession, bs: int) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            out = []
            for i in range(0, n, bs):
                x = ((chips[i : i + bs].astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)
                out.append(sess.run(None, {"input": np.ascontiguousarray(x)})[0])
            return np.concatenate(out)
        return run

    pipelines: dict[tuple[str, int], Callable[[], object]] = {}
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        pipelines[("port (PyTorch)", bs)] = lambda bs=bs: port(bs)
        model, label = (exported, "as exported") if bs == 1 else (dynamic, "free-batch copy")
        for daz in (False, True):
            name = f"onnxruntime, {label}" + (", denormals as zero" if daz else "")
            pipelines[(name, bs)] = runtime(session(model, daz), bs)
        if args.flushed:
            name = f"onnxruntime, {label}, weights < {FLUSH_BELOW:g} zeroed like the port's (not the file)"
            pipelines[(name, bs)] = runtime(session(flushed_copy(model, FLUSH_BELOW), False), bs)
    load_before = os.getloadavg()[0]
    rates = best_rates(pipelines, n, args.repeats)
    rows = [(name, bs, r) for (name, bs), r in rates.items()]

    reference = runtime(session(exported, False), 1)().astype(np.float64)
    ours = port(64).astype(np.float64)
    cos = (ours * reference).sum(1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))

    print(f"\n{n} LFW devtest chips (arcface112), {args.threads} threads, best of {args.repeats}; "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, "
          f"1-minute load average {load_before:.2f} before the timings, {os.getloadavg()[0]:.2f} after\n")
    print("| pipeline | batch | images/s | ms per image | vs best onnxruntime on the file |")
    print("|---|---:|---:|---:|---:|")
    for name, bs, r in rows:
        best_ort = max(x for nm, b, x in rows if b == bs and nm.startswith("onnxruntime") and "zeroed" not in nm)
        print(f"| {name} | {bs} | {r:.1f} | {1000 / r:.2f} | {r / best_ort:.2f}x |")
    print(f"\nport vs onnxruntime (file as exported, batch 1): min cosine {cos.min():.15f} (1 - {1 - cos.min():.1e}), "
          f"max |diff| {np.abs(ours - reference).max():.2e} (largest |value| {np.abs(reference).max():.3f})")
    print(f"load_mobilefacenet (sha256 + parse + check + build): {load_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
