"""LightQNet's TensorFlow graphs against the PyTorch port, and the reference fixture of the tests.

    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu numpy
    .venv/bin/python benchmarks/lightqnet_reference.py --tf-python /tmp/tfenv/bin/python [--lfw 240] [--write]

TensorFlow is not a dependency of the project: it lives in its own
environment, and this script runs that environment's interpreter on itself
(``--tf-worker``; that side imports only numpy and tensorflow) to run each
official graph (``lightqnet-dm100.pb``, ``-dm050.pb``, ``-dm025.pb``) with
TensorFlow's v1 session, fed as the authors' demo feeds it: BGR images,
``(img - 128.) / 128.`` in float64, cast to the float32 placeholder.  The
project's side (aligning, the port) runs in the project's venv.

Inputs:

* ``SYNTHETIC_COUNT`` synthetic 96x96 RGB chips from :func:`synthetic_chips`
  (seed ``SYNTHETIC_SEED``): half uniform noise, half smooth 8x8-block
  textures;
* ``--lfw`` real LFW images (every k-th of all 13,233 in path order),
  aligned to the ``lightqnet96`` template exactly as the pipeline does it
  (dlib HOG + 5 points, :class:`fiqa_bench.faces.align.FaceAligner`).

It prints, per width, the largest absolute difference between the port's
output and TensorFlow's on each input set.  With ``--write`` it stores
``tests/data/lightqnet_reference.npz``: the synthetic seed and count and
the sha256 of the generated chips, TensorFlow's outputs for them, and for
``FIXTURE_LFW`` of the LFW images (evenly spaced in the sample) their paths (relative to
``lfw/images_deepfunneled``), the face box and dlib's five integer landmarks
the aligner found in each, and TensorFlow's outputs.  No image pixels are
stored: the tests regenerate the synthetic chips from the seed and cut the
LFW chips from ``../shared`` again.  No digest of a chip is stored either:
the warp that cuts a chip from its landmarks (``cv2.warpAffine``) picks its
bilinear kernel by CPU (AVX2 with FMA, SSE4.1, baseline), so chips cut on
two machines may differ by one grey level in a few pixels; the tests check
the landmarks exactly and the outputs on chips cut there with a tolerance
(``tests/test_lightqnet.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SYNTHETIC_SEED, SYNTHETIC_COUNT = 2021, 32
FIXTURE_LFW = 20
WIDTHS = ("dm100", "dm050", "dm025")
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "lightqnet_reference.npz"


def synthetic_chips(seed: int = SYNTHETIC_SEED, count: int = SYNTHETIC_COUNT) -> np.ndarray:
    """``(count, 96, 96, 3)`` uint8 RGB test inputs: the first half uniform noise, the rest 8x8-block textures."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (count // 2, 96, 96, 3), dtype=np.uint8)
    blocks = rng.integers(0, 256, (count - count // 2, 12, 12, 3), dtype=np.uint8)
    smooth = np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2)
    return np.concatenate([noise, smooth])


def chip_digest(chip: np.ndarray) -> str:
    """sha256 of one chip's bytes (C order, uint8)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(chip, dtype=np.uint8).tobytes()).hexdigest()


# --- the TensorFlow side (run by --tf-python; imports numpy and tensorflow only) ----------------------

def tf_worker(inputs: str, outputs: str, model_dir: str) -> None:
    """Run every width's graph on the BGR uint8 images in ``inputs`` (npz ``bgr``); write ``outputs``."""
    import tensorflow as tf

    bgr = np.load(inputs)["bgr"]
    images = (bgr - 128.0) / 128.0  # the demo's scaling, float64, on BGR as cv2.imread gives it
    result = {"tensorflow": np.array(tf.__version__)}
    for width in WIDTHS:
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString((Path(model_dir) / f"lightqnet-{width}.pb").read_bytes())
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            out = [session.run("confidence_st:0", {"input:0": images[i : i + 64]}) for i in range(0, len(images), 64)]
        result[width] = np.concatenate(out).reshape(-1).astype(np.float32)
    np.savez(outputs, **result)


def tf_outputs(tf_python: str, rgb: np.ndarray, model_dir: Path) -> dict[str, np.ndarray]:
    """TensorFlow's outputs per width for RGB uint8 chips, computed by ``tf_python`` running this file."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, bgr=np.ascontiguousarray(rgb[..., ::-1]))
        subprocess.run([tf_python, __file__, "--tf-worker", str(src), str(dst), str(model_dir)], check=True)
        with np.load(dst) as data:
            return {k: data[k] for k in data.files}


# --- the project's side ------------------------------------------------------------------------------

def lfw_sample(lfw_images: Path, count: int) -> list[str]:
    """Every k-th LFW image path (relative, sorted) so that ``count`` are taken."""
    paths = sorted(p.relative_to(lfw_images).as_posix() for p in lfw_images.glob("*/*.jpg"))
    step = max(len(paths) // count, 1)
    return paths[::step][:count]


def lfw_chips(lfw_images: Path, relative: list[str], workers: int) -> tuple[np.ndarray, list[str], list]:
    """``lightqnet96`` chips of the images (aligned as the pipeline aligns them), the alignment notes and
    each image's :class:`~fiqa_bench.faces.align.FaceAnalysis` (box and landmarks)."""
    from fiqa_bench.faces.align import AlignmentSettings
    from fiqa_bench.faces.batch import align_images
    from fiqa_bench.faces.templates import get_template

    template = get_template("lightqnet96")
    jobs = [(str(lfw_images / r), (template,), None) for r in relative]
    results = list(align_images(jobs, AlignmentSettings(), workers))
    failed = [r for r, res in zip(relative, results) if res.failure]
    if failed:
        raise RuntimeError(f"could not read {failed}")
    return (np.stack([res.chips["lightqnet96"] for res in results]), ["; ".join(res.notes) for res in results],
            [res.face for res in results])


def port_outputs(chips: np.ndarray, model_dir: Path) -> dict[str, np.ndarray]:
    from fiqa_bench.methods.lightqnet import LightQNet

    return {w: LightQNet(width=w, model_dir=str(model_dir)).native_score(chips) for w in WIDTHS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tf-python", required=True, help="a Python interpreter that has tensorflow and numpy")
    parser.add_argument("--lfw", type=int, default=240, help="LFW images to compare on")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--write", action="store_true", help=f"write {FIXTURE}")
    args = parser.parse_args()

    from fiqa_bench.pipeline.paths import default_data_root, default_models_root

    model_dir = default_models_root() / "lightqnet"
    lfw_images = default_data_root() / "lfw" / "images_deepfunneled"
    synthetic = synthetic_chips()
    relative = lfw_sample(lfw_images, max(args.lfw, FIXTURE_LFW))
    chips, notes, faces = lfw_chips(lfw_images, relative, args.workers)
    fallback = sum("no face detected" in n for n in notes)
    reference = {"synthetic": tf_outputs(args.tf_python, synthetic, model_dir),
                 "lfw": tf_outputs(args.tf_python, chips, model_dir)}
    port = {"synthetic": port_outputs(synthetic, model_dir), "lfw": port_outputs(chips, model_dir)}
    print(f"TensorFlow {reference['lfw']['tensorflow']}; {len(synthetic)} synthetic chips, {len(chips)} LFW chips "
          f"({fallback} aligned in the fallback box)")
    print()
    print("| width | inputs | n | max abs difference | TF output range |")
    print("|---|---|---:|---:|---|")
    for width in WIDTHS:
        for kind in ("synthetic", "lfw"):
            tf_out, ours = reference[kind][width].astype(np.float64), port[kind][width]
            print(f"| {width} | {kind} | {len(ours)} | {np.abs(ours - tf_out).max():.2e} | "
                  f"{tf_out.min():.4f} .. {tf_out.max():.4f} |")
    if args.write:
        keep = np.arange(0, len(relative), len(relative) // FIXTURE_LFW)[:FIXTURE_LFW]  # spread over the alphabet
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        meta = {"made_by": "benchmarks/lightqnet_reference.py --write",
                "tensorflow": str(reference["lfw"]["tensorflow"]), "numpy": np.__version__,
                "lfw_root": "lfw/images_deepfunneled", "template": "lightqnet96"}
        np.savez_compressed(
            FIXTURE, synthetic_seed=SYNTHETIC_SEED, synthetic_count=SYNTHETIC_COUNT,
            synthetic_sha256=np.array(chip_digest(synthetic)),
            lfw_paths=np.array([relative[i] for i in keep]),
            lfw_boxes=np.array([faces[i].box for i in keep], dtype=np.int64),
            lfw_landmarks=np.stack([faces[i].landmarks for i in keep]).astype(np.int64),
            meta=np.array(json.dumps(meta, sort_keys=True)),
            **{f"synthetic_{w}": reference["synthetic"][w] for w in WIDTHS},
            **{f"lfw_{w}": reference["lfw"][w][keep] for w in WIDTHS},
        )
        print(f"\nwrote {FIXTURE}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--tf-worker":
        tf_worker(*sys.argv[2:])
    else:
        main()
