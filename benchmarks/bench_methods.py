"""Scoring speed of every registered method, and SER-FIQ's cost against one plain embedding pass.

    .venv/bin/python benchmarks/bench_methods.py [--images 512] [--repeats 3]

On aligned LFW devtest chips (detection and alignment are shared by every
method and left out), per method: the time to make what it reads from the
chips (backbone or stage features of the recognition model; nothing for
chip and landmark methods) plus its own scoring, best of ``--repeats``,
as images per second.  SER-FIQ's T = 100 passes are set against one plain
embedding pass of the same chips (the issue's goal: at most 1.2x).
"""

from __future__ import annotations

import argparse
import time


from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import load_dataset
from fiqa_bench.data.base import Dataset
from fiqa_bench.method import METHODS, create_method
from fiqa_bench.pipeline.paths import default_data_root, resolve_cache_dir
from fiqa_bench.pipeline.embedding import dataset_chips, dataset_landmarks


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    devtest = load_dataset("lfw", default_data_root(), "devtest")
    dataset = Dataset("lfw:devtest[:n]", devtest.root, devtest.samples[: args.images])
    context = RunContext(resolve_cache_dir(), progress=False)
    chips, failed, _ = dataset_chips(dataset, "dlib150", context)
    landmarks, _, _ = dataset_landmarks(dataset, context)
    chips, landmarks = chips[~failed], landmarks[~failed]
    chips_of = {"dlib150": chips}  # other templates (lightqnet96, arcface112) cut on demand
    n = len(chips)
    print(f"{n} aligned LFW devtest chips (dlib150), best of {args.repeats}")
    print()
    print("| method | reads | images/s | ms per image |")
    print("|---|---|---:|---:|")
    for name in METHODS.names():
        method = create_method(name)
        kind, _, argument = method.card.needs.partition(":")
        if kind == "chips":
            if argument not in chips_of:
                chips_of[argument] = dataset_chips(dataset, argument, context)[0][~failed]

            def run(m=method, x=chips_of[argument]):
                m.score(x)
        elif kind == "landmarks":
            def run(m=method):
                m.score(landmarks)
        else:
            model = method.model if hasattr(method, "model") else context.model(argument)
            extract = {"backbone": model.backbone_features, "stages": model.stage_features,
                       "embeddings": model.embed}[kind]

            def run(m=method, extract=extract):
                m.score(extract(chips))
        seconds = best_of(args.repeats, run)
        print(f"| {name} | {method.card.needs} | {n / seconds:.0f} | {1000 * seconds / n:.2f} |")
    # SER-FIQ against a plain pass, measured back to back (the CPU's clock drifts between the rows above)
    method = create_method("serfiq")
    model = method.model
    plain = best_of(args.repeats, lambda: model.embed(chips))
    serfiq = best_of(args.repeats, lambda: method.score(model.backbone_features(chips)))
    plain = min(plain, best_of(args.repeats, lambda: model.embed(chips)))
    print()
    print(f"plain dlib-resnet embedding pass: {n / plain:.0f} images/s; SER-FIQ (T=100, backbone once + 100 "
          f"passes of the projection): {n / serfiq:.0f} images/s = {serfiq / plain:.2f}x the plain pass's time")


if __name__ == "__main__":
    main()
