"""LightQNet: a lightweight network distilled to predict recognition quality (Chen, Yi and Lv, IEEE SPL 2021).

The paper treats quality as a classification problem: pairwise binary
quality pseudo-labels come from a face recognition model's similarity
scores, an *identification quality* loss trains a quality branch of the
recognition network, and a small network is distilled from that branch.
The authors' trained networks are used as published (``KaenChan/lightqnet``,
MIT; frozen TensorFlow graphs read from ``<models root>/lightqnet/``, never
copied), so nothing is trained here.  For an aligned face ``x`` (96x96,
BGR, ``(x - 128) / 128``):

    q(x) = sigmoid( w . avgpool_6x6( f(x) ) + b )

with ``f`` a MobileNetV3-style body read from the graph: a 3x3 stem
convolution (stride 1), 11 inverted-residual blocks (1x1 expansion, 3x3
depthwise convolution, 1x1 linear projection, identity shortcut when the
shape allows; four depthwise convolutions have stride 2, 96 -> 6 px),
ReLU throughout (no squeeze-excitation, no hard-swish), batch norm
(epsilon 2e-5) after every convolution, then a 1x1 convolution to 576
channels (dm100).  ``w`` is a 576 -> 1 linear layer.  Widths: ``dm100``
(depth multiplier 1.0: 0.44 M parameters with the batch-norm statistics,
the paper's 0.45 M), ``dm050`` (0.13 M) and ``dm025`` (0.05 M).  Native
output: ``q`` in (0, 1), **higher is better**.

The graph is read by :mod:`fiqa_bench.formats.graphdef` and run by
:class:`fiqa_bench.formats.graphdef_torch.GraphModule` (PyTorch, batch norms folded
into the convolutions), without TensorFlow.  Against TensorFlow's own run
of the graph the outputs agree to about 3e-7 (``tests/test_lightqnet.py``;
``benchmarks/lightqnet_reference.py`` made the reference).  Each file's
sha256 is checked before it is read.

**Default width: dm100.**  The paper's results (its 0.45 M parameters,
77 M FLOPs, and the 3.98 ms per image on an i7-8700 in the authors' README)
are for the full-width network; dm050 is only what the demo script loads.
The full width costs little here: on 2 CPU cores the port scores batches of
64 at about 2 ms per image (dm050: 0.6 ms), one image at a time in about
4.6 ms (``benchmarks/bench_lightqnet.py``).  ``width=dm050`` or ``dm025``
select the narrower published models.

**Alignment.**  The authors align with MTCNN's eye centres and mouth centre
(see :mod:`fiqa_bench.faces.templates`, template ``lightqnet96``).  dlib's
five points have no mouth, so the chip is fitted to dlib's eye corners and
nose base placed by the eyes alone: scale and roll are those the demo
would give a face shaped like the average (ArcFace) face; the mouth target
is not used.  Chips are RGB; they are flipped to BGR (what OpenCV's
``imread`` gives the demo) before scaling.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fiqa_bench.formats.graphdef import parse_graphdef
from fiqa_bench.formats.graphdef_torch import GraphModule
from fiqa_bench.method import METHODS, MethodCard, QualityMethod
from fiqa_bench.pipeline.paths import default_models_root

PAPER = ("K. Chen, T. Yi, Q. Lv, LightQNet: Lightweight Deep Face Quality Assessment for Risk-Controlled Face "
         "Recognition, IEEE Signal Processing Letters 28, 2021")
TEMPLATE = "lightqnet96"
INPUT_NODE, OUTPUT_NODE = "input", "confidence_st"

#: sha256 of the official files (KaenChan/lightqnet), by width.
SHA256 = {
    "dm100": "057b8ea2714953b70745934bcd7a927f4676a827a55509a2adc64e7282f836f3",
    "dm050": "cf7d045e9c6b7eb99a599d1af9447cab6c23d4d97a2be4738d8279def859c4ac",
    "dm025": "731eade9066ca76c78c9a989dd5d5c73d9dd2dfc3084bdb5fdfb6ad87cac6c10",
}


def model_file(width: str, model_dir: str | Path | None = None) -> Path:
    """``lightqnet-<width>.pb`` in ``model_dir`` (default ``<models root>/lightqnet``); a clear error if absent."""
    if width not in SHA256:
        raise ValueError(f"lightqnet: width must be one of {', '.join(SHA256)}, got {width!r}")
    folder = Path(model_dir).expanduser() if model_dir else default_models_root() / "lightqnet"
    if not folder.is_dir():
        raise FileNotFoundError(f"LightQNet's model folder {folder} does not exist (set --set model_dir=FOLDER, "
                                f"or $FIQA_BENCH_MODELS to a folder holding lightqnet/)")
    path = folder / f"lightqnet-{width}.pb"
    if not path.is_file():
        raise FileNotFoundError(f"LightQNet's model file {path} does not exist (the official "
                                f"lightqnet-{width}.pb from KaenChan/lightqnet)")
    return path


def read_checked(path: Path, sha256: str) -> bytes:
    """The bytes of ``path``, after checking that their sha256 is ``sha256``."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"{path}: sha256 {digest} is not that of the official {path.name} ({sha256}); "
                         f"the file is damaged or another model")
    return data


def load_network(path: Path, sha256: str) -> GraphModule:
    """The frozen graph at ``path`` (sha256-checked) as a PyTorch module from ``input`` to ``confidence_st``."""
    network = GraphModule(parse_graphdef(read_checked(path, sha256)), INPUT_NODE, OUTPUT_NODE)
    return network.eval()


def network_input(chips: np.ndarray) -> np.ndarray:
    """``(N, 96, 96, 3)`` uint8 RGB chips as LightQNet's input: BGR, ``(x - 128) / 128``, float32 NHWC."""
    if chips.ndim != 4 or chips.shape[1:] != (96, 96, 3):
        raise ValueError(f"lightqnet reads (N, 96, 96, 3) chips, got shape {chips.shape}")
    return (chips[..., ::-1].astype(np.float32) - 128.0) / 128.0


class LightQNet(QualityMethod):
    """LightQNet's official network on the ``lightqnet96`` chip (native: sigmoid confidence, higher = better).

    Args:
        width: ``dm100`` (full width, the paper's model), ``dm050`` or ``dm025``.
        model_dir: folder holding ``lightqnet-<width>.pb`` (default ``<models root>/lightqnet``).
    """

    def __init__(self, width: str = "dm100", model_dir: str | None = None) -> None:
        path = model_file(width, model_dir)
        self.width = width
        self.network = load_network(path, SHA256[width])
        self.card = MethodCard(name="lightqnet", paper=PAPER, higher_is_better=True, needs=f"chips:{TEMPLATE}",
                               trained=False, weights=f"{path.name} (official weights of KaenChan's lightqnet, MIT)",
                               weights_sha256=SHA256[width])

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"weights": SHA256[self.width]}

    def native_score(self, chips: np.ndarray, batch_size: int = 256) -> np.ndarray:
        out = np.empty(len(chips))
        with torch.inference_mode():
            for start in range(0, len(chips), batch_size):
                x = torch.from_numpy(network_input(chips[start : start + batch_size]))
                out[start : start + batch_size] = self.network(x).reshape(-1).double().numpy()
        return out


METHODS.add("lightqnet", LightQNet, description="LightQNet (IEEE SPL 2021): the authors' distilled quality "
            "network (official weights, read from the TensorFlow graph)")
