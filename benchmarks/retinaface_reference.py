"""RetinaFace: the reference code against the port, and the reference fixture of the tests.

    git clone https://github.com/biubug6/Face-Detector-1MB-with-landmark /tmp/retinaface-ref
    .venv/bin/python benchmarks/retinaface_reference.py --reference /tmp/retinaface-ref [--write]

The reference repository stays outside the project; nothing of it is
copied.  This script runs itself in a subprocess (``--worker``) whose
import path starts with the checkout, imports the checkout's ``detect.py``
(its argument parser run with ``--network mobile0.25 --cpu -m WEIGHTS``,
everything else at its defaults: ``confidence_threshold`` 0.02, ``top_k``
5000, ``nms_threshold`` 0.4, ``keep_top_k`` 750, ``origin_size`` True),
builds the network with ``detect.load_model`` and runs, per image, the body
of ``detect.py``'s test loop with the image it is given in place of
``cv2.imread("./img/sample.jpg")``: ``PriorBox``, ``decode``,
``decode_landm``, ``py_cpu_nms`` are the checkout's own.  Only the
drawing and writing of ``test.jpg`` is left out.  The weights are
``<models root>/retinaface-mobilenet0.25/mobilenet0.25_Final.pth`` (the same
file as the checkout's ``weights/mobilenet0.25_Final.pth``).

Inputs (:func:`inputs`): the LFW images of :data:`LFW_IMAGES` (relative to
``lfw/images_deepfunneled``: a plain frontal face, images with several
faces, strongly turned faces) decoded as the project decodes them
(:func:`fiqa_bench.faces.io.load_rgb`, Pillow) and handed to the
reference as BGR; and the composites of :data:`COMPOSITES`, built by
:func:`compose` from LFW images: two faces side by side on a 400x640
canvas (one scaled to 0.8), and a face scaled to 0.5 on an odd-sized
131x157 canvas (priors on grids that do not divide the image).  The script
notes whether OpenCV's ``imread`` (what ``detect.py`` uses) decodes the LFW
files to the same pixels.

It prints, per image, the number of detections (all above 0.02, and those
scoring at least 0.6) and the largest differences between the port
(:class:`fiqa_bench.faces.retinaface.RetinaFace`, one image at a time and
in one batch per image size) and the reference.  With ``--write`` it
stores ``tests/data/retinaface_reference.npz``: the recipe (LFW paths,
composite recipes, every input's per-channel pixel mean, versions, the
checkout's commit) as JSON in ``meta``, and per input ``k`` the
reference's ``boxes_k`` (K, 4), ``scores_k`` (K,) and ``landmarks_k``
(K, 5, 2), float32 as the reference computes them.  No pixels are stored.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "retinaface_reference.npz"

#: LFW images (relative to ``lfw/images_deepfunneled``) and why each is there.
LFW_IMAGES: dict[str, str] = {
    "Aaron_Eckhart/Aaron_Eckhart_0001.jpg": "one frontal face",
    "Vladimir_Putin/Vladimir_Putin_0007.jpg": "five faces",
    "Choi_Sung-hong/Choi_Sung-hong_0003.jpg": "four faces",
    "Juan_Roman_Riquelme/Juan_Roman_Riquelme_0001.jpg": "four faces, 140+ candidates above 0.02",
    "Jacques_Chirac/Jacques_Chirac_0010.jpg": "strongly turned face",
    "Stephen_Silas/Stephen_Silas_0001.jpg": "turned face",
    "Rudolph_Giuliani/Rudolph_Giuliani_0025.jpg": "turned face, two faces",
}

#: Synthetic inputs: a canvas ``size`` (H, W) filled with ``fill`` (RGB), LFW images pasted on it after
#: scaling by ``scale`` (OpenCV INTER_AREA to ``round(250 * scale)``), top-left corner at ``(x, y)``.
COMPOSITES: dict[str, dict] = {
    "two_faces_on_canvas": {
        "size": [400, 640], "fill": [118, 118, 118],
        "paste": [{"image": "Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "scale": 1.0, "x": 40, "y": 90},
                  {"image": "Colin_Powell/Colin_Powell_0001.jpg", "scale": 0.8, "x": 380, "y": 60}],
    },
    "downscaled_face": {
        "size": [131, 157], "fill": [30, 60, 90],
        "paste": [{"image": "Stephen_Silas/Stephen_Silas_0001.jpg", "scale": 0.5, "x": 13, "y": 3}],
    },
}


def compose(recipe: dict, lfw_images: Path) -> np.ndarray:
    """The RGB uint8 image a :data:`COMPOSITES` recipe describes (LFW images read with ``load_rgb``)."""
    import cv2

    from fiqa_bench.faces.io import load_rgb

    height, width = recipe["size"]
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = recipe["fill"]
    for paste in recipe["paste"]:
        image = load_rgb(lfw_images / paste["image"])[0]
        if paste["scale"] != 1.0:
            size = (round(image.shape[1] * paste["scale"]), round(image.shape[0] * paste["scale"]))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        x, y = paste["x"], paste["y"]
        canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
    return canvas


def pixels_mean(image: np.ndarray) -> list[float]:
    """Per-channel mean of an RGB image, rounded to 1e-4: what the tests compare their inputs by.

    Not a digest: decoding and ``cv2.resize`` may round a few pixels the other way on another CPU or
    library build, which moves a mean by far less than a grey level, while another image, crop or
    channel order moves it by several."""
    return [round(float(v), 4) for v in np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)]


def inputs(lfw_images: Path) -> list[tuple[str, np.ndarray]]:
    """``(name, RGB uint8 image)`` of every input: LFW paths first, then composite names."""
    from fiqa_bench.faces.io import load_rgb

    out = [(path, load_rgb(lfw_images / path)[0]) for path in LFW_IMAGES]
    return out + [(name, compose(recipe, lfw_images)) for name, recipe in COMPOSITES.items()]


# --- the reference's side (run as --worker: the checkout first on the import path) ---------------------

def reference_worker(checkout: str, weights: str, src: str, dst: str) -> None:
    """Run ``detect.py``'s loop body on the BGR images in ``src`` (npz ``image_k``); write ``dst``."""
    sys.path.insert(0, checkout)
    os.chdir(checkout)
    sys.argv = ["detect.py", "--network", "mobile0.25", "--cpu", "-m", weights]
    import torch

    import detect  # the checkout's: parses sys.argv at import

    torch.set_grad_enabled(False)
    args, cfg = detect.args, detect.cfg_mnet
    net = detect.RetinaFace(cfg=cfg, phase="test")
    missing = set(net.state_dict()) - set(detect.remove_prefix(torch.load(weights, map_location="cpu"), "module."))
    assert not missing, f"reference: checkpoint lacks {sorted(missing)}"
    net = detect.load_model(net, args.trained_model, args.cpu)
    net.eval()
    device = torch.device("cpu")
    net = net.to(device)
    result: dict[str, np.ndarray] = {"settings": np.array(json.dumps({k: getattr(args, k) for k in (
        "confidence_threshold", "top_k", "nms_threshold", "keep_top_k", "origin_size", "vis_thres")})),
        "cfg": np.array(json.dumps(cfg)), "torch": np.array(torch.__version__)}
    with np.load(src) as data:
        for k in range(int(data["count"])):
            img_raw = data[f"image_{k}"]
            # --- detect.py, the body of ``for i in range(100)``, from ``img = np.float32(img_raw)`` ---
            img = np.float32(img_raw)
            target_size = args.long_side
            max_size = args.long_side
            im_shape = img.shape
            im_size_min = np.min(im_shape[0:2])
            im_size_max = np.max(im_shape[0:2])
            resize = float(target_size) / float(im_size_min)
            if np.round(resize * im_size_max) > max_size:
                resize = float(max_size) / float(im_size_max)
            if args.origin_size:
                resize = 1
            if resize != 1:
                img = detect.cv2.resize(img, None, None, fx=resize, fy=resize, interpolation=detect.cv2.INTER_LINEAR)
            im_height, im_width, _ = img.shape
            scale = torch.Tensor([img.shape[1], img.shape[0], img.shape[1], img.shape[0]])
            img -= (104, 117, 123)
            img = img.transpose(2, 0, 1)
            img = torch.from_numpy(img).unsqueeze(0)
            img = img.to(device)
            scale = scale.to(device)
            loc, conf, landms = net(img)
            priorbox = detect.PriorBox(cfg, image_size=(im_height, im_width))
            priors = priorbox.forward()
            priors = priors.to(device)
            prior_data = priors.data
            boxes = detect.decode(loc.data.squeeze(0), prior_data, cfg["variance"])
            boxes = boxes * scale / resize
            boxes = boxes.cpu().numpy()
            scores = conf.squeeze(0).data.cpu().numpy()[:, 1]
            landms = detect.decode_landm(landms.data.squeeze(0), prior_data, cfg["variance"])
            scale1 = torch.Tensor([img.shape[3], img.shape[2]] * 5)
            scale1 = scale1.to(device)
            landms = landms * scale1 / resize
            landms = landms.cpu().numpy()
            inds = np.where(scores > args.confidence_threshold)[0]
            boxes = boxes[inds]
            landms = landms[inds]
            scores = scores[inds]
            order = scores.argsort()[::-1][: args.top_k]
            boxes = boxes[order]
            landms = landms[order]
            scores = scores[order]
            dets = np.hstack((boxes, scores[:, np.newaxis])).astype(np.float32, copy=False)
            keep = detect.py_cpu_nms(dets, args.nms_threshold)
            dets = dets[keep, :]
            landms = landms[keep]
            dets = dets[: args.keep_top_k, :]
            landms = landms[: args.keep_top_k, :]
            # --- end of detect.py's code (the rest draws and writes test.jpg) ---
            result[f"boxes_{k}"] = dets[:, :4]
            result[f"scores_{k}"] = dets[:, 4]
            result[f"landmarks_{k}"] = landms.astype(np.float32).reshape(-1, 5, 2)
    np.savez(dst, **result)


def reference_outputs(checkout: Path, weights: Path, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The reference's detections for RGB uint8 ``images``, from :func:`reference_worker` in a subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, count=len(images), **{f"image_{k}": np.ascontiguousarray(im[..., ::-1])
                                            for k, im in enumerate(images)})
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(checkout.resolve()),
                        str(weights.resolve()), str(src), str(dst)], check=True, stdout=subprocess.DEVNULL)
        with np.load(dst) as data:
            return {k: data[k] for k in data.files}


# --- the comparison (also used by tests/test_retinaface.py) --------------------------------------------

def match(ours_boxes: np.ndarray, ref_boxes: np.ndarray) -> np.ndarray:
    """For each reference box, the index of our box nearest it (largest absolute corner difference)."""
    if len(ref_boxes) == 0:
        return np.zeros(0, dtype=int)
    if len(ours_boxes) == 0:
        raise ValueError(f"no detections to match {len(ref_boxes)} reference boxes against")
    return np.abs(ref_boxes[:, None, :] - ours_boxes[None, :, :]).max(axis=2).argmin(axis=1)


def differences(ours, ref_boxes: np.ndarray, ref_scores: np.ndarray, ref_landmarks: np.ndarray,
                min_score: float = 0.0) -> dict[str, float]:
    """Counts and largest differences between ``ours`` (Detections) and a reference, for scores >= ``min_score``."""
    keep_ref = ref_scores >= min_score
    keep_ours = ours.scores >= min_score
    boxes, scores, landmarks = ours.boxes[keep_ours], ours.scores[keep_ours], ours.landmarks[keep_ours]
    pair = match(boxes, ref_boxes[keep_ref].astype(np.float64))
    out = {"reference": int(keep_ref.sum()), "ours": int(keep_ours.sum()),
           "unique_pairs": bool(len(set(pair.tolist())) == len(pair)),
           "box": 0.0, "landmark": 0.0, "score": 0.0}
    if len(pair):
        out["box"] = float(np.abs(boxes[pair] - ref_boxes[keep_ref]).max())
        out["landmark"] = float(np.abs(landmarks[pair] - ref_landmarks[keep_ref]).max())
        out["score"] = float(np.abs(scores[pair] - ref_scores[keep_ref]).max())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True,
                        help="a checkout of biubug6/Face-Detector-1MB-with-landmark")
    parser.add_argument("--write", action="store_true", help=f"write {FIXTURE}")
    args = parser.parse_args()

    import cv2
    import torch

    from fiqa_bench.faces.retinaface import SHA256, RetinaFace, weights_file
    from fiqa_bench.pipeline.paths import default_data_root

    torch.set_num_threads(2)
    if not (args.reference / "detect.py").is_file():
        parser.error(f"{args.reference} is not a checkout of Face-Detector-1MB-with-landmark (no detect.py)")
    lfw_images = default_data_root() / "lfw" / "images_deepfunneled"
    weights = weights_file()
    named = inputs(lfw_images)
    names, images = [n for n, _ in named], [im for _, im in named]
    same_decode = [n for n in LFW_IMAGES if np.array_equal(cv2.imread(str(lfw_images / n))[..., ::-1], dict(named)[n])]
    print(f"OpenCV's imread gives Pillow's pixels on {len(same_decode)} of {len(LFW_IMAGES)} LFW images")
    ref = reference_outputs(args.reference, weights, images)
    detector = RetinaFace()
    single = [detector.detect(im) for im in images]
    by_size: dict[tuple[int, ...], list[int]] = {}
    for k, im in enumerate(images):
        by_size.setdefault(im.shape, []).append(k)
    batched: list = [None] * len(images)
    for ks in by_size.values():
        for k, d in zip(ks, detector.detect_batch([images[k] for k in ks])):
            batched[k] = d

    print(f"reference settings {ref['settings']}, torch {ref['torch']}")
    print()
    print("| input | size | run | detections (ref/ours) | >= 0.6 | max box diff px | max landmark diff px | "
          "max score diff |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    worst = {"box": 0.0, "landmark": 0.0, "score": 0.0}
    for k, name in enumerate(names):
        rb, rs, rl = ref[f"boxes_{k}"], ref[f"scores_{k}"], ref[f"landmarks_{k}"]
        for run, ours in (("single", single[k]), ("batched", batched[k])):
            d = differences(ours, rb, rs, rl)
            faces = differences(ours, rb, rs, rl, min_score=0.6)
            for key in worst:
                worst[key] = max(worst[key], d[key])
            flag = "" if d["unique_pairs"] and d["reference"] == d["ours"] else " MISMATCH"
            print(f"| {name} | {images[k].shape[0]}x{images[k].shape[1]} | {run} | {d['reference']}/{d['ours']}{flag} "
                  f"| {faces['reference']}/{faces['ours']} | {d['box']:.2e} | {d['landmark']:.2e} | "
                  f"{d['score']:.2e} |")
    print(f"\nlargest differences over all {len(names)} inputs: box {worst['box']:.2e} px, "
          f"landmark {worst['landmark']:.2e} px, score {worst['score']:.2e}")

    if args.write:
        commit = subprocess.run(["git", "-C", str(args.reference), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        meta = {"made_by": "benchmarks/retinaface_reference.py --write",
                "reference": "biubug6/Face-Detector-1MB-with-landmark", "reference_commit": commit,
                "weights_sha256": SHA256, "torch": str(ref["torch"]), "opencv": cv2.__version__,
                "numpy": np.__version__, "settings": json.loads(str(ref["settings"])),
                "cfg": json.loads(str(ref["cfg"])), "lfw_root": "lfw/images_deepfunneled",
                "inputs": names, "lfw_images": LFW_IMAGES, "composites": COMPOSITES,
                "pixels_mean": [pixels_mean(im) for im in images],
                "shapes": [list(im.shape) for im in images]}
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(FIXTURE, meta=np.array(json.dumps(meta, sort_keys=True)),
                            **{f"{part}_{k}": ref[f"{part}_{k}"] for k in range(len(names))
                               for part in ("boxes", "scores", "landmarks")})
        print(f"\nwrote {FIXTURE}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        reference_worker(*sys.argv[2:])
    else:
        main()
