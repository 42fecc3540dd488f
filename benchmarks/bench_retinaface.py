"""RetinaFace-MobileNet0.25 against dlib's HOG detector on LFW: detection speed and how often a face is found.

    .venv/bin/python benchmarks/bench_retinaface.py [--images 256] [--threads 1,2] [--batches 1,32] [--repeats 2]

Images: every k-th of LFW's deep-funneled images in path order (250x250),
decoded once beforehand with :func:`fiqa_bench.faces.io.load_rgb`; only
detection is timed.  Detectors:

* ``hog``: dlib's frontal-face HOG detector as
  :class:`fiqa_bench.faces.align.FaceAligner` runs it (the levels of
  ``AlignmentSettings().upsample_attempts``: no upsampling, then upsampled
  once when no face was found); single-threaded.
* ``retinaface``: :class:`fiqa_bench.faces.retinaface.RetinaFace` at the
  reference's settings, one image at a time (``detect``) and in batches
  (``detect_batch``), with ``torch.set_num_threads`` per ``--threads``.
  A face is a detection scoring at least 0.6 (:data:`FACE_THRESHOLD`).

Per configuration: the best of ``--repeats`` passes over all images (after
a short warm-up), as images per second and milliseconds per image.  Then,
per detector, how many images have at least one face, how many several,
and for images where both find one, the IoU of the two most central
faces' boxes (HOG's boxes are squarer and tighter, so this is a sanity
check, not an accuracy measure).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def lfw_sample(lfw_images: Path, count: int) -> list[Path]:
    """Every k-th LFW image (sorted paths) so that ``count`` are taken."""
    paths = sorted(lfw_images.glob("*/*.jpg"))
    step = max(len(paths) // count, 1)
    return paths[::step][:count]


def best_pass(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The shortest wall time of ``repeats`` calls of ``run`` and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def hog_boxes(detector, image: np.ndarray, levels: tuple[int, ...]) -> list[tuple[int, int, int, int]]:
    """The HOG detector's boxes at the first upsampling level that finds any (FaceAligner's loop)."""
    boxes: list[tuple[int, int, int, int]] = []
    for level in levels:
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in detector(image, level)]
        if boxes:
            break
    return boxes


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Plain IoU of two ``(x1, y1, x2, y2)`` boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    parser.add_argument("--batches", default="1,32", help="comma-separated RetinaFace batch sizes")
    parser.add_argument("--repeats", type=int, default=2, help="passes per configuration (the best is kept)")
    args = parser.parse_args()

    import dlib

    from fiqa_bench.faces.align import AlignmentSettings
    from fiqa_bench.faces.detector import pick_central
    from fiqa_bench.faces.io import load_rgb
    from fiqa_bench.faces.retinaface import FACE_THRESHOLD, RetinaFace, central_face
    from fiqa_bench.pipeline.paths import default_data_root

    paths = lfw_sample(default_data_root() / "lfw" / "images_deepfunneled", args.images)
    images = [load_rgb(p)[0] for p in paths]
    levels = AlignmentSettings().upsample_attempts
    hog = dlib.get_frontal_face_detector()
    retina = RetinaFace()
    load = os.getloadavg()
    print(f"{len(images)} LFW images {images[0].shape[1]}x{images[0].shape[0]}; torch {torch.__version__}, "
          f"dlib {dlib.__version__}; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"load average before: {load[0]:.2f}")
    print()
    print("| detector | threads | batch | ms per image | images/s |")
    print("|---|---:|---:|---:|---:|")

    for image in images[:4]:
        hog_boxes(hog, image, levels)
    seconds, hog_found = best_pass(lambda: [hog_boxes(hog, im, levels) for im in images], args.repeats)
    print(f"| dlib HOG, upsample {' then '.join(map(str, levels))} | 1 | 1 | {1000 * seconds / len(images):.1f} | "
          f"{len(images) / seconds:.1f} |")

    retina_found = None
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for batch in (int(b) for b in args.batches.split(",")):
            def run(batch: int = batch) -> list:
                if batch == 1:
                    return [retina.detect(im) for im in images]
                return retina.detect_batch(images, batch_size=batch)

            retina.detect_batch(images[:batch], batch_size=batch)  # warm-up
            seconds, retina_found = best_pass(run, args.repeats)
            print(f"| RetinaFace-MobileNet0.25 | {threads} | {batch} | {1000 * seconds / len(images):.1f} | "
                  f"{len(images) / seconds:.1f} |")
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} (above the 2 cores used here means other jobs competed)")

    height, width = images[0].shape[:2]
    faces = [central_face(d, width, height) for d in retina_found]
    hog_level0 = sum(bool(hog(im, 0)) for im in images)
    ious = [iou(tuple(f.box), boxes[pick_central(boxes, width, height)])
            for f, boxes in zip(faces, hog_found) if f is not None and boxes]
    print()
    print("| detector | images with >= 1 face | with several | none |")
    print("|---|---:|---:|---:|")
    print(f"| dlib HOG, no upsampling | {hog_level0} | | {len(images) - hog_level0} |")
    n_hog = sum(bool(b) for b in hog_found)
    print(f"| dlib HOG, upsample {' then '.join(map(str, levels))} | {n_hog} | {sum(len(b) > 1 for b in hog_found)} "
          f"| {len(images) - n_hog} |")
    n_ret = sum(f is not None for f in faces)
    print(f"| RetinaFace, score >= {FACE_THRESHOLD} | {n_ret} | {sum(f is not None and f.faces > 1 for f in faces)} "
          f"| {len(images) - n_ret} |")
    both = len(ious)
    print(f"\nboth find a face on {both} images; IoU of the two central boxes: median {np.median(ious):.3f}, "
          f"min {np.min(ious):.3f}; {sum(i < 0.3 for i in ious)} below 0.3 (likely different faces)")
    missed_by_hog = [p.relative_to(p.parents[1]).as_posix() for p, f, b in zip(paths, faces, hog_found)
                     if f is not None and not b]
    missed_by_retina = [p.relative_to(p.parents[1]).as_posix() for p, f, b in zip(paths, faces, hog_found)
                        if f is None and b]
    print(f"found by RetinaFace only: {missed_by_hog}")
    print(f"found by HOG only: {missed_by_retina}")


if __name__ == "__main__":
    main()
