"""RetinaFace face detector (MobileNet-0.25 backbone) with five landmarks, in PyTorch.

RetinaFace (Deng et al., "RetinaFace: Single-stage Dense Face Localisation in
the Wild", CVPR 2020) predicts, for every anchor ("prior") of a dense grid, a
face/background score, a box offset and five landmark offsets.  The weights
are those of biubug6/Face-Detector-1MB-with-landmark (MIT; the file
``mobilenet0.25_Final.pth`` read in place from
``<models root>/retinaface-mobilenet0.25/``, sha256-checked, never copied),
trained on WIDER FACE.  The network is rebuilt here with the same state-dict
key names, so the file loads with ``strict=True``:

* ``body``: MobileNet-V1 at width 0.25, ReLU after every batch norm.
  ``stage1``: 3x3 conv 3->8 /2, then depthwise-separable blocks (3x3
  depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU) 8->16, 16->32 /2,
  32->32, 32->64 /2, 64->64 (stride 8, 64 channels); ``stage2``: 64->128 /2
  and five 128->128 (stride 16); ``stage3``: 128->256 /2, 256->256
  (stride 32).  Every convolution is bias-free with padding ``k // 2``, so
  a side ``n`` becomes ``ceil(n / s)`` at stride ``s``.
* ``fpn``: 1x1 conv + BN + ReLU of each stage to 64 channels; top-down,
  ``P2 = merge2(C2 + up(C3))``, ``P1 = merge1(C1 + up(P2))`` with
  nearest-neighbour upsampling to the finer map's size and ``merge`` a
  3x3 conv + BN + ReLU.
* ``ssh1..3`` (SSH context module, Najibi et al. 2017) on each level:
  ``relu(cat[conv3x3(x) -> 32, conv3x3(a) -> 16, conv3x3(relu-conv3x3(a)) -> 16])``
  with ``a = relu-conv3x3(x) -> 16``; the three branches see 3x3, 5x5 and
  7x7 receptive fields.
* heads, one 1x1 convolution per level and 2 anchors per cell:
  ``ClassHead`` (2 logits, softmax), ``BboxHead`` (4 offsets),
  ``LandmarkHead`` (10 offsets), flattened cell by cell (row-major, then
  anchor) and concatenated over the levels 8, 16, 32.

**Priors** (the reference's ``cfg_mnet``): at level ``k`` with stride
``s_k`` the map is ``ceil(H / s_k) x ceil(W / s_k)``; each cell ``(i, j)``
holds one prior per size ``m`` in ``min_sizes[k]``, centred at
``((j + 0.5) s_k / W, (i + 0.5) s_k / H)`` with size ``(m / W, m / H)``
(normalised; no clipping).  ``min_sizes = [[10, 20], [32, 64], [128, 256]]``
and ``steps = [8, 16, 32]``: this repository *shrank* the anchors of
biubug6/Pytorch_Retinaface's ``cfg_mnet`` (``[[16, 32], [64, 128], [256,
512]]``), and its checkpoint is trained for the smaller ones (with the
larger ones the eyes land 17 px off on LFW instead of 1.6 px).

**Decoding** with variances ``(v0, v1) = (0.1, 0.2)``, prior ``(c, s)``
(centre, size) and predicted offsets ``(t_c, t_s)``, ``l_k``:

    centre = c + v0 t_c s,   size = s exp(v1 t_s),   box = centre -/+ size / 2
    landmark_k = c + v0 l_k s            (k = 1..5)

then scaled by ``(W, H)`` to pixels.

**Detection** as the reference's ``detect.py`` does it at the original
image size (its defaults, :class:`DetectionSettings`): the image as BGR
float32 minus the per-channel mean ``(104, 117, 123)``, no scaling; keep
scores ``> 0.02``; the ``top_k = 5000`` best; greedy NMS at IoU ``0.4``
with the reference's pixel-inclusive areas (``(x2 - x1 + 1) (y2 - y1 + 1)``,
as in ``py_cpu_nms``); the ``keep_top_k = 750`` best.  The 0.02 threshold
is meant for the WIDER FACE evaluation and keeps faint candidates;
:func:`central_face` counts as faces only detections scoring at least
``0.6`` (``detect.py``'s visualisation threshold ``vis_thres``).

**Landmarks** come in the network's order: left eye, right eye (image
order, i.e. the subject's right eye first), nose tip, left and right mouth
corner; the order of :data:`fiqa_bench.faces.templates.ARCFACE_112_POINTS`,
as insightface uses RetinaFace's points.

Against the reference code run unmodified (``benchmarks/retinaface_reference.py``,
fixture ``tests/data/retinaface_reference.npz``) boxes, landmarks and
scores agree to float32 rounding: at most 3e-5 px and 4e-7 in score on 9
inputs and 194 detections (the network runs in channels-last memory order,
which changes the order of float32 sums; in the reference's own memory
order the outputs are bit-identical).  Runs are deterministic (CPU; eval
mode, no randomness).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fiqa_bench.faces.detector import pick_central
from fiqa_bench.pipeline.hashing import sha256_file, sha256_json
from fiqa_bench.pipeline.paths import default_models_root

PAPER = ("J. Deng, J. Guo, E. Ververas, I. Kotsia, S. Zafeiriou, RetinaFace: Single-stage Dense Face "
         "Localisation in the Wild, CVPR 2020")
WEIGHTS_FOLDER = "retinaface-mobilenet0.25"
WEIGHTS_FILE = "mobilenet0.25_Final.pth"
#: sha256 of biubug6/Face-Detector-1MB-with-landmark's ``weights/mobilenet0.25_Final.pth``.
SHA256 = "ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1"

MIN_SIZES: tuple[tuple[int, ...], ...] = ((10, 20), (32, 64), (128, 256))
STEPS: tuple[int, ...] = (8, 16, 32)
VARIANCE: tuple[float, float] = (0.1, 0.2)
BGR_MEAN: tuple[float, float, float] = (104.0, 117.0, 123.0)
#: ``detect.py``'s ``vis_thres``: the score from which a detection counts as a face.
FACE_THRESHOLD = 0.6


@dataclass(frozen=True)
class DetectionSettings:
    """The reference's post-processing (``detect.py`` defaults).

    Attributes:
        confidence_threshold: candidates must score strictly above this.
        top_k: best candidates kept before NMS.
        nms_threshold: a candidate overlapping a better one by more than
            this IoU (pixel-inclusive areas) is dropped.
        keep_top_k: best detections kept after NMS.
    """

    confidence_threshold: float = 0.02
    top_k: int = 5000
    nms_threshold: float = 0.4
    keep_top_k: int = 750

    def __post_init__(self) -> None:
        if not 0 <= self.confidence_threshold < 1:
            raise ValueError(f"confidence_threshold must be in [0, 1), got {self.confidence_threshold}")
        if not 0 < self.nms_threshold <= 1:
            raise ValueError(f"nms_threshold must be in (0, 1], got {self.nms_threshold}")
        if self.top_k < 1 or self.keep_top_k < 1:
            raise ValueError(f"top_k and keep_top_k must be positive, got {self.top_k}, {self.keep_top_k}")


# ------------------------------------------------------------------------------------
# Weights.

def weights_file(path: str | Path | None = None) -> Path:
    """``path``, or ``<models root>/retinaface-mobilenet0.25/mobilenet0.25_Final.pth``; a clear error if absent."""
    file = Path(path).expanduser() if path else default_models_root() / WEIGHTS_FOLDER / WEIGHTS_FILE
    if not file.is_file():
        raise FileNotFoundError(f"RetinaFace weights {file} do not exist (the {WEIGHTS_FILE} of "
                                f"biubug6/Face-Detector-1MB-with-landmark; set $FIQA_BENCH_MODELS to a folder "
                                f"holding {WEIGHTS_FOLDER}/, or pass the file's path)")
    return file


def read_state_dict(path: Path, sha256: str | None = SHA256) -> dict[str, torch.Tensor]:
    """The tensors in the checkpoint at ``path``, ``module.`` prefixes stripped.

    The file's sha256 is checked first when ``sha256`` is given.  A dict
    holding a ``state_dict`` entry (a training checkpoint) is unwrapped.
    """
    if sha256 is not None:
        digest = sha256_file(path)
        if digest != sha256:
            raise ValueError(f"{path}: sha256 {digest} is not that of the official {WEIGHTS_FILE} ({sha256}); "
                             f"the file is damaged or another model (pass sha256=None to load other weights)")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, Mapping) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"{path}: not a state dict of tensors (got {type(loaded).__name__})")
    return {strip_prefix(k, "module."): v for k, v in loaded.items()}


def strip_prefix(key: str, prefix: str) -> str:
    """``key`` without a leading ``prefix``."""
    return key[len(prefix):] if key.startswith(prefix) else key


def check_state_dict(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]) -> None:
    """Raise one ValueError naming every missing, unexpected or mis-shaped tensor of ``found``."""
    problems = [f"missing tensor {k!r} (expected shape {tuple(v.shape)})" for k, v in expected.items() if k not in found]
    problems += [f"unexpected tensor {k!r} (shape {tuple(v.shape)})" for k, v in found.items() if k not in expected]
    problems += [f"tensor {k!r}: expected shape {tuple(v.shape)}, found {tuple(found[k].shape)}"
                 for k, v in expected.items() if k in found and found[k].shape != v.shape]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ValueError(f"the checkpoint does not fit RetinaFace-MobileNet0.25: {shown}")


# ------------------------------------------------------------------------------------
# The network (module names follow the checkpoint's keys).

def conv_bn(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    """Bias-free ``kernel`` x ``kernel`` convolution (padding ``kernel // 2``), batch norm, optional ReLU."""
    layers: list[nn.Module] = [nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(out)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def separable(inp: int, out: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 (stride ``stride``) + BN + ReLU, then pointwise 1x1 + BN + ReLU, flattened into one Sequential."""
    return nn.Sequential(*conv_bn(inp, inp, 3, stride, groups=inp), *conv_bn(inp, out, 1))


class MobileNetBody(nn.Module):
    """MobileNet-V1 x0.25 up to stride 32; returns the stride-8, -16 and -32 maps (64, 128, 256 channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(3, 8, 3, 2), separable(8, 16, 1), separable(16, 32, 2),
                                    separable(32, 32, 1), separable(32, 64, 2), separable(64, 64, 1))
        self.stage2 = nn.Sequential(separable(64, 128, 2), *(separable(128, 128, 1) for _ in range(5)))
        self.stage3 = nn.Sequential(separable(128, 256, 2), separable(256, 256, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return c1, c2, self.stage3(c2)


class FPN(nn.Module):
    """Feature pyramid: lateral 1x1 convs to ``out`` channels, top-down nearest upsampling, 3x3 merges."""

    def __init__(self, channels: Sequence[int], out: int) -> None:
        super().__init__()
        self.output1, self.output2, self.output3 = (conv_bn(c, out, 1) for c in channels)
        self.merge1 = conv_bn(out, out)
        self.merge2 = conv_bn(out, out)

    def forward(self, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.output3(c3)
        p2 = self.merge2(self.output2(c2) + F.interpolate(p3, size=c2.shape[2:], mode="nearest"))
        p1 = self.merge1(self.output1(c1) + F.interpolate(p2, size=c1.shape[2:], mode="nearest"))
        return [p1, p2, p3]


class SSH(nn.Module):
    """SSH context module: 3x3, 5x5 and 7x7 receptive-field branches (``out/2``, ``out/4``, ``out/4``), ReLU."""

    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        self.conv3X3 = conv_bn(inp, out // 2, relu=False)
        self.conv5X5_1 = conv_bn(inp, out // 4)
        self.conv5X5_2 = conv_bn(out // 4, out // 4, relu=False)
        self.conv7X7_2 = conv_bn(out // 4, out // 4)
        self.conv7x7_3 = conv_bn(out // 4, out // 4, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv5X5_1(x)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(a), self.conv7x7_3(self.conv7X7_2(a))], dim=1))


class Head(nn.Module):
    """A 1x1 convolution to ``anchors * values`` channels, as ``(N, cells * anchors, values)``."""

    def __init__(self, inp: int, anchors: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(inp, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)


class RetinaFaceNet(nn.Module):
    """RetinaFace-MobileNet0.25: ``(N, 3, H, W)`` mean-subtracted BGR -> box offsets, face scores, landmark offsets.

    ``forward`` returns ``(N, P, 4)`` box offsets, ``(N, P)`` face
    probabilities (softmax over face/background) and ``(N, P, 10)``
    landmark offsets, ``P`` = the number of priors of :func:`prior_boxes`.
    """

    def __init__(self, width: int = 64, anchors: int = 2) -> None:
        super().__init__()
        self.body = MobileNetBody()
        self.fpn = FPN((64, 128, 256), width)
        self.ssh1, self.ssh2, self.ssh3 = SSH(width, width), SSH(width, width), SSH(width, width)
        self.ClassHead = nn.ModuleList(Head(width, anchors, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(Head(width, anchors, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(Head(width, anchors, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p1, p2, p3 = self.fpn(*self.body(x))
        features = [self.ssh1(p1), self.ssh2(p2), self.ssh3(p3)]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, features)], dim=1)
        logits = torch.cat([h(f) for h, f in zip(self.ClassHead, features)], dim=1)
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, features)], dim=1)
        return loc, F.softmax(logits, dim=-1)[..., 1], landmarks


# ------------------------------------------------------------------------------------
# Priors, decoding, NMS (pure functions).

def prior_boxes(height: int, width: int, min_sizes: Sequence[Sequence[int]] = MIN_SIZES,
                steps: Sequence[int] = STEPS) -> torch.Tensor:
    """``(P, 4)`` float32 priors ``(cx, cy, w, h)``, normalised by the image size, in the network's output order.

    Level by level, cell by cell (row-major over a ``ceil(H/s) x ceil(W/s)``
    grid), then size by size; computed in float64 then rounded, as the
    reference builds them in Python floats.
    """
    levels = []
    for sizes, step in zip(min_sizes, steps):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy = np.repeat((np.arange(rows) + 0.5) * step / height, cols * len(sizes))
        cx = np.tile(np.repeat((np.arange(cols) + 0.5) * step / width, len(sizes)), rows)
        sw = np.tile(np.asarray(sizes, dtype=np.float64) / width, rows * cols)
        sh = np.tile(np.asarray(sizes, dtype=np.float64) / height, rows * cols)
        levels.append(np.stack([cx, cy, sw, sh], axis=1))
    return torch.from_numpy(np.concatenate(levels).astype(np.float32))


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variance: tuple[float, float] = VARIANCE) -> torch.Tensor:
    """``(P, 4)`` corner boxes ``(x1, y1, x2, y2)`` (normalised) from box offsets and ``(cx, cy, w, h)`` priors."""
    centre = priors[:, :2] + loc[:, :2] * variance[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * variance[1])
    corner = centre - size / 2
    return torch.cat([corner, corner + size], dim=1)


def decode_landmarks(pre: torch.Tensor, priors: torch.Tensor,
                     variance: tuple[float, float] = VARIANCE) -> torch.Tensor:
    """``(P, 10)`` landmarks ``(x1, y1, ..., x5, y5)`` (normalised) from landmark offsets and priors."""
    offsets = pre.reshape(-1, 5, 2)
    points = priors[:, None, :2] + offsets * variance[0] * priors[:, None, 2:]
    return points.reshape(-1, 10)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept by greedy NMS, best first, with pixel-inclusive areas ``(x2 - x1 + 1) (y2 - y1 + 1)``.

    The reference's ``py_cpu_nms`` rule: a box is dropped when its IoU with
    a kept, better box exceeds ``iou_threshold``.  Pixel-inclusive IoU of
    ``(x1, y1, x2, y2)`` is plain IoU of ``(x1, y1, x2 + 1, y2 + 1)``, which
    torchvision's NMS computes.
    """
    from torchvision.ops import nms as tv_nms

    shifted = boxes + torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=boxes.dtype, device=boxes.device)
    return tv_nms(shifted, scores, iou_threshold)


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, best score first.

    Attributes:
        boxes: ``(K, 4)`` float64 ``(x1, y1, x2, y2)`` in pixels.
        scores: ``(K,)`` float64 face probabilities.
        landmarks: ``(K, 5, 2)`` float64 ``(x, y)``: left eye, right eye
            (image order), nose tip, left and right mouth corner.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def select(loc: torch.Tensor, scores: torch.Tensor, pre: torch.Tensor, priors: torch.Tensor,
           height: int, width: int, settings: DetectionSettings) -> Detections:
    """One image's detections from its raw outputs: decode, threshold, top-k, NMS, keep-top-k (``detect.py``)."""
    scale = torch.tensor([width, height], dtype=torch.float32, device=loc.device)
    boxes = decode_boxes(loc, priors) * scale.repeat(2)
    points = decode_landmarks(pre, priors) * scale.repeat(5)
    keep = torch.nonzero(scores > settings.confidence_threshold).flatten()
    order = keep[torch.argsort(scores[keep], descending=True, stable=True)][: settings.top_k]
    kept = order[nms(boxes[order], scores[order], settings.nms_threshold)][: settings.keep_top_k]
    return Detections(boxes=boxes[kept].double().cpu().numpy(), scores=scores[kept].double().cpu().numpy(),
                      landmarks=points[kept].double().cpu().numpy().reshape(-1, 5, 2))


# ------------------------------------------------------------------------------------
# One face per image.

@dataclass(frozen=True)
class Face:
    """The face kept in one image.

    Attributes:
        box: ``(4,)`` float64 ``(x1, y1, x2, y2)`` in pixels.
        score: its face probability.
        landmarks: ``(5, 2)`` float64, in the ArcFace order (left eye, right
            eye in image order, nose tip, left and right mouth corner).
        faces: how many detections scored at least the threshold.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    faces: int


def central_face(detections: Detections, width: int, height: int, min_score: float = FACE_THRESHOLD) -> Face | None:
    """The detection scoring at least ``min_score`` whose box centre is nearest the image centre, or None.

    The rule of every detector (:func:`fiqa_bench.faces.detector.pick_central`):
    nearest centre, the larger box on a tie.
    """
    candidates = np.flatnonzero(detections.scores >= min_score)
    if len(candidates) == 0:
        return None
    boxes = [tuple(float(v) for v in detections.boxes[i]) for i in candidates]
    best = int(candidates[pick_central(boxes, width, height)])  # type: ignore[arg-type]  # float boxes
    return Face(box=detections.boxes[best].copy(), score=float(detections.scores[best]),
                landmarks=detections.landmarks[best].copy(), faces=len(candidates))


# ------------------------------------------------------------------------------------
# The detector.

class RetinaFace:
    """RetinaFace-MobileNet0.25 with the official weights; images are RGB uint8 ``(H, W, 3)`` at their own size.

    Args:
        weights: the checkpoint (default ``<models root>/retinaface-mobilenet0.25/mobilenet0.25_Final.pth``).
        device: torch device to run on.
        sha256: the checkpoint's expected sha256 (default: the official file's); None skips the check.
        settings: post-processing (default: the reference's).
    """

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu",
                 sha256: str | None = SHA256, settings: DetectionSettings | None = None) -> None:
        self.path = weights_file(weights)
        self.device = torch.device(device)
        self.settings = settings or DetectionSettings()
        state = read_state_dict(self.path, sha256)
        network = RetinaFaceNet()
        check_state_dict(network.state_dict(), state)
        network.load_state_dict(state, strict=True)
        # channels-last (NHWC) memory: oneDNN's depthwise convolutions run about 1.5x faster on CPU
        self.network = network.eval().to(self.device, memory_format=torch.channels_last)
        self.weights_sha256 = sha256 if sha256 is not None else sha256_file(self.path)
        self._priors: dict[tuple[int, int], torch.Tensor] = {}

    def fingerprint(self) -> str:
        """Hash of the weights and the post-processing settings (for cache keys)."""
        return sha256_json({"detector": "retinaface-mobilenet0.25", "weights": self.weights_sha256,
                            "settings": asdict(self.settings)})[:16]

    def priors(self, height: int, width: int) -> torch.Tensor:
        """The priors of an ``height`` x ``width`` image, on the device (cached per size)."""
        if (height, width) not in self._priors:
            self._priors[(height, width)] = prior_boxes(height, width).to(self.device)
        return self._priors[(height, width)]

    def detect(self, image: np.ndarray) -> Detections:
        """Faces in one RGB uint8 ``(H, W, 3)`` image, best first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray], batch_size: int = 32) -> list[Detections]:
        """Faces in each of ``images`` (RGB uint8, all the same size), run ``batch_size`` at a time."""
        if not len(images):
            return []
        shape = images[0].shape
        for k, image in enumerate(images):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"image {k}: expected RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
            if image.shape != shape:
                raise ValueError(f"detect_batch needs images of one size: image 0 is {shape}, image {k} {image.shape}")
        height, width = shape[:2]
        priors = self.priors(height, width)
        mean = torch.tensor(BGR_MEAN, dtype=torch.float32)
        out: list[Detections] = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                chunk = np.stack(images[start : start + batch_size])[..., ::-1].astype(np.float32)
                x = (torch.from_numpy(chunk) - mean).permute(0, 3, 1, 2).to(self.device)
                x = x.contiguous(memory_format=torch.channels_last)
                loc, scores, pre = self.network(x)
                out += [select(loc[i], scores[i], pre[i], priors, height, width, self.settings)
                        for i in range(len(x))]
        return out
