"""The three chip stores on LFW: disk per image, the cost of first alignment, and of reading chips again.

    .venv/bin/python benchmarks/bench_chip_store.py [--images 2048] [--templates dlib150,arcface112] [--repeats 3]

Images: every k-th of LFW's deep-funneled images in path order (250x250 JPEGs
of about 15 KB), given as a ``folder:`` dataset of symbolic links, with dlib's
HOG detector (the default).  Per store (:mod:`fiqa_bench.pipeline.chips`: ``raw``,
``webp``, ``none``) in a fresh cache of its own:

* ``first pass``: :func:`fiqa_bench.pipeline.embedding.dataset_chips` of the first
  template from a cold cache (hashing, detection, landmarks, cutting and
  keeping the chips; detection dominates), with ``--workers`` processes;
* ``later templates``: the other templates, faces read from the cache;
* ``read again``: ``dataset_chips`` of the first template once its cache is
  warm, the best of ``--repeats`` (what every later stage that reads chips
  pays: a second model on the same template, a chip-based method, full-mode
  training);
* ``disk``: bytes under the cache's chip folders per image and template,
  and the whole cache per image.

Every store's chips are checked equal to the raw store's, bit for bit.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from fiqa_bench.pipeline.context import RunContext
from fiqa_bench.data import load_dataset
from fiqa_bench.pipeline.paths import CHIP_STORES, default_data_root
from fiqa_bench.pipeline.embedding import dataset_chips


def lfw_folder(root: Path, count: int, into: Path) -> Path:
    """A folder dataset of links to every k-th LFW image (sorted paths), ``count`` of them."""
    paths = sorted((root / "lfw" / "images_deepfunneled").glob("*/*.jpg"))
    for path in paths[:: max(len(paths) // count, 1)][:count]:
        (into / path.parent.name).mkdir(parents=True, exist_ok=True)
        (into / path.parent.name / path.name).symlink_to(path)
    return into


def folder_bytes(*folders: Path) -> int:
    return sum(f.stat().st_size for d in folders if d.is_dir() for f in d.rglob("*") if f.is_file())


def timed(run):  # noqa: ANN001, ANN201 - any callable
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--templates", default="dlib150,arcface112")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    templates = args.templates.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        folder = lfw_folder(default_data_root(), args.images, Path(tmp) / "faces")
        dataset = load_dataset(f"folder:{folder}", Path(tmp))
        n = len(dataset.paths)
        print(f"{n} LFW images, templates {', '.join(templates)}, {args.workers} alignment workers, "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
        print("\n| store | first pass (s) | later templates (s) | read again, best of "
              f"{args.repeats} (ms/img) | chips on disk (KB/img per template) | whole cache (KB/img) |")
        print("|---|---:|---:|---:|---|---:|")
        reference = None
        for kind in CHIP_STORES:
            cache = Path(tmp) / f"cache-{kind}"
            # a new context per store: it hashes its images as a fresh process would
            context = RunContext(cache, workers=args.workers, progress=False, chip_store=kind)
            first, (chips, _, _) = timed(lambda: dataset_chips(dataset, templates[0], context))
            later = sum(timed(lambda t=t: dataset_chips(dataset, t, context))[0] for t in templates[1:])
            again = min(timed(lambda: dataset_chips(dataset, templates[0], context))[0]
                        for _ in range(args.repeats))
            if reference is None:
                reference = chips
            if not np.array_equal(chips, reference):
                raise SystemExit(f"the {kind} store's chips differ from the raw store's")
            per_template = ", ".join(
                f"{t} {folder_bytes(cache / 'chips' / t, cache / 'chips-webp' / t) / n / 1024:.1f}"
                for t in templates)
            print(f"| {kind} | {first:.1f} | {later:.1f} | {again / n * 1000:.2f} | {per_template} | "
                  f"{folder_bytes(cache) / n / 1024:.1f} |")
        print("\nevery store's chips equal the raw store's, bit for bit")


if __name__ == "__main__":
    main()
