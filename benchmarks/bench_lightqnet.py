"""LightQNet's scoring speed per width, one image at a time and in batches.

    .venv/bin/python benchmarks/bench_lightqnet.py [--threads 2] [--batches 1,64] [--seconds 3]

Times ``LightQNet.native_score`` (preprocessing + the network, the chips
already aligned) on random 96x96 chips: the content does not change the
work.  Per width and batch size: the median time of repeated calls over
about ``--seconds`` seconds, after a warm-up, as milliseconds per image and
images per second.  The authors report 3.98 ms per image for the full
width (dm100), 2.37 ms for dm050 and 1.97 ms for dm025, one image at a
time on an Intel i7-8700 with TensorFlow (their README).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from fiqa_bench.methods.lightqnet import SHA256, LightQNet


def median_seconds(function, seconds: float) -> float:
    """Median wall time of ``function()`` over about ``seconds`` seconds (after three warm-up calls)."""
    for _ in range(3):
        function()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    chips = np.random.default_rng(0).integers(0, 256, (max(batches), 96, 96, 3), dtype=np.uint8)
    print(f"torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}")
    print()
    print("| width | batch | ms per image | images/s |")
    print("|---|---:|---:|---:|")
    for width in SHA256:
        method = LightQNet(width=width)
        for batch in batches:
            seconds = median_seconds(lambda: method.native_score(chips[:batch]), args.seconds)
            print(f"| {width} | {batch} | {1000 * seconds / batch:.2f} | {batch / seconds:.0f} |")


if __name__ == "__main__":
    main()
