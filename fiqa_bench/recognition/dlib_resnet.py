"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

The weights are read straight from dlib's ``.dat`` file by
:mod:`fiqa_bench.recognition.dlib_serialization`; dlib itself is not needed.

Architecture (dlib's ``anet_type`` in ``tools/python/src/face_recognition.cpp``)
------------------------------------------------------------------------------
Input: a 150x150 RGB chip; each channel has its stored mean subtracted
(122.782, 117.001, 104.298) and is divided by 256.  Then:

* stem: conv 7x7/2 (3->32, **no padding**) -> affine -> relu -> max-pool 3x3/2
  (no padding): 150 -> 72 -> 35.
* 14 residual blocks; each is ``conv3x3 -> affine -> relu -> conv3x3 -> affine``,
  added to a shortcut, then relu.

  =====  ========================  =============  ===============
  level  blocks                    channels       spatial
  =====  ========================  =============  ===============
  4      3 plain                   32             35
  3      1 down + 3 plain          32 -> 64       35 -> 17
  2      1 down + 2 plain          64 -> 128      17 -> 8
  1      1 down + 2 plain          128 -> 256     8 -> 4 (!)
  0      1 down                    256            4 -> 2 (!)
  =====  ========================  =============  ===============

  A plain block's convs are 3x3/1 with padding 1 and the shortcut is the
  identity.  A down block's first conv is 3x3/2 with **no padding** (dlib's
  default padding is ``size/2`` only when the stride is 1), and its shortcut
  is a 2x2/2 average pool of the block input, with the input's (possibly
  fewer) channels.
* global average pool (N, 256) -> fully connected 256 -> 128 without bias.
  dlib's descriptor is this raw 128-vector (not normalised).

Adding tensors of different shapes
----------------------------------
dlib's ``add_prev`` output takes the maximum of each dimension, and each input
contributes only inside its own extent (it is zero elsewhere), anchored at
channel 0 / row 0 / column 0.  That happens in every down block: channels
32+64, 64+128, 128+256; and spatially at level 1 (conv branch (8-3)//2+1 = 3
against pool 8//2 = 4, so the output is 4x4 with the conv branch in the
top-left 3x3) and level 0 (conv branch 1x1 against pool 2x2: the conv branch
reaches only the top-left pixel).  The final average pool then averages a
2x2 map in which three pixels hold only the shortcut.

In the file, tag/skip layers carry no tag number, so which layer a ``skip``
or ``add_prev`` refers to is taken from the architecture above; the parsed
layer sequence (kinds and every hyper-parameter) is checked against it.

Speed
-----
By default each affine layer (a per-channel ``gamma * x + beta``, dlib's
frozen batch norm) is folded into the conv before it (``w * gamma``,
``b * gamma + beta``); this changes results only by float rounding: on 500
LFW chips the minimum cosine to dlib's own descriptors is 0.999999999999 and
the largest element difference 5e-7.  ``fold_affine=False`` keeps them
separate.  The network runs in channels-last memory format (about 1.4x faster
than NCHW with oneDNN on CPU); the preprocessed input is already
channels-last (a permuted NHWC tensor), so it is not copied.  On 2 CPU
threads the port runs at roughly 490 images/s at batch 16-64 and 230 at
batch 1, against about 13 images/s for dlib's ``compute_face_descriptor``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fiqa_bench.recognition.base import ModelCard, TorchEmbeddingNet, TorchRecognitionModel
from fiqa_bench.recognition.dlib_serialization import TAG_OR_SKIP, DlibNetwork, parse_dlib_network
from fiqa_bench.recognition.registry import register_model

MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
CHIP_SIZE = 150
EMBEDDING_DIM = 128
BACKBONE_DIM = 256

STAGE_ENDS = (3, 7, 10, 13, 14)
"""Indices in ``backbone`` of the last module of each of dlib's five levels
(32, 64, 128, 256 and 256 channels; ``level4`` ... ``level0`` in dlib's
``dnn_face_recognition_ex.cpp``)."""

#: (out_channels, downsamples) for the 14 residual blocks, in forward order.
BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)


# ------------------------------------------------------------------------------------
# The expected layer sequence and the dlib -> torch conversion.

def _con(n: int, k: int, stride: int) -> tuple[str, dict[str, Any]]:
    pad = 0 if stride != 1 else k // 2  # dlib's default padding rule
    return "con", {"num_filters": n, "nr": k, "nc": k, "stride_y": stride, "stride_x": stride,
                   "padding_y": pad, "padding_x": pad, "use_relu": False, "use_bias": True}


def _pool(kind: str, k: int, stride: int) -> tuple[str, dict[str, Any]]:
    pad = 0 if stride != 1 else k // 2
    return kind, {"nr": k, "nc": k, "stride_y": stride, "stride_x": stride,
                  "padding_y": pad, "padding_x": pad}


_AFFINE = ("affine", {"mode": "conv", "disabled": False})
_RELU = ("relu", {"disabled": False})
_MARK = (TAG_OR_SKIP, {})


def expected_layers() -> list[tuple[str, dict[str, Any], str]]:
    """dlib's anet_type in forward order: ``(kind, required hyper-parameters, torch name)``.

    The torch name is the prefix of the layer's parameters in the raw state
    dict ("" for layers without parameters).
    """
    seq: list[tuple[str, dict[str, Any], str]] = [
        (*_con(32, 7, 2), "stem.conv"), (*_AFFINE, "stem.affine"), (*_RELU, ""),
        (*_pool("max_pool", 3, 2), ""),
    ]
    for b, (n, down) in enumerate(BLOCKS):
        seq.append((*_MARK, ""))  # tag1: the block input
        seq += [(*_con(n, 3, 2 if down else 1), f"blocks.{b}.conv1"), (*_AFFINE, f"blocks.{b}.affine1"),
                (*_RELU, ""), (*_con(n, 3, 1), f"blocks.{b}.conv2"), (*_AFFINE, f"blocks.{b}.affine2")]
        if down:  # tag2 (block output), skip1 (back to the block input), 2x2/2 average pool
            seq += [(*_MARK, ""), (*_MARK, ""), (*_pool("avg_pool", 2, 2), "")]
        seq += [("add_prev", {}, ""), (*_RELU, "")]
    seq.append(("avg_pool", {"nr": 0, "nc": 0, "stride_y": 1, "stride_x": 1,
                             "padding_y": 0, "padding_x": 0}, ""))
    seq.append(("fc", {"num_outputs": EMBEDDING_DIM, "num_inputs": BACKBONE_DIM, "has_bias": False},
                "embedding"))
    return seq


def raw_state_dict(net: DlibNetwork) -> dict[str, torch.Tensor]:
    """Check ``net`` against dlib's anet_type and return its weights under torch names.

    Keys: ``input_mean`` (3,); ``stem.conv.weight``/``.bias``, ``stem.affine.gamma``/
    ``.beta``; ``blocks.{b}.conv{1,2}.*`` and ``blocks.{b}.affine{1,2}.*``;
    ``embedding.weight`` (128, 256) -- unfolded, exactly the stored values.

    Raises:
        ValueError: the network's layers, hyper-parameters or shapes differ
            from the architecture (naming the file, layer index and offset).
    """
    inp = net.input.params
    if net.input.kind != "input_rgb_image_sized" or (inp.get("nr"), inp.get("nc")) != (CHIP_SIZE, CHIP_SIZE):
        raise ValueError(f"{net.source}: expected a 150x150 input_rgb_image_sized input layer, "
                         f"got {net.input.describe()}")
    if net.loss.kind != "loss_metric":
        raise ValueError(f"{net.source}: expected a loss_metric network, got {net.loss.describe()}")
    spec = expected_layers()
    if len(spec) != len(net.layers):
        raise ValueError(f"{net.source}: expected {len(spec)} layers (dlib's face-recognition "
                         f"ResNet), found {len(net.layers)}")
    sd: dict[str, torch.Tensor] = {
        "input_mean": torch.tensor([inp["avg_red"], inp["avg_green"], inp["avg_blue"]], dtype=torch.float32)
    }
    in_channels = 3
    for i, ((kind, required, name), layer) in enumerate(zip(spec, net.layers)):
        where = f"{net.source}: layer {i} (byte offset {layer.offset})"
        if layer.kind != kind:
            raise ValueError(f"{where}: expected {kind}, found {layer.kind} ({layer.version})")
        for key, value in required.items():
            if layer.params.get(key) != value:
                raise ValueError(f"{where}: {kind} {key}={layer.params.get(key)!r}, expected {value!r}")
        if kind == "con":
            w = layer.arrays["weight"]
            n, k = required["num_filters"], required["nr"]
            if w.shape[0] != n or w.shape[2:] != (k, k) or layer.arrays["bias"].shape != (n,):
                raise ValueError(f"{where}: con weight {w.shape} does not match {n} filters of {k}x{k}")
            # Every conv reads the channels of the conv before it (a block's first conv
            # reads the previous block's output, whose channels its conv2 set).
            if w.shape[1] != in_channels:
                raise ValueError(f"{where}: con has {w.shape[1]} input channels, expected {in_channels}")
            in_channels = n
            sd[f"{name}.weight"] = torch.from_numpy(w.copy())
            sd[f"{name}.bias"] = torch.from_numpy(layer.arrays["bias"].copy())
        elif kind == "affine":
            g, b = layer.arrays["gamma"], layer.arrays["beta"]
            if g.size != in_channels or b.size != in_channels:
                raise ValueError(f"{where}: affine has {g.size}/{b.size} values, expected {in_channels}")
            sd[f"{name}.gamma"] = torch.from_numpy(g.reshape(-1).copy())
            sd[f"{name}.beta"] = torch.from_numpy(b.reshape(-1).copy())
        elif kind == "fc":
            w = layer.arrays["weight"]  # (num_inputs, num_outputs), output = x @ w
            sd[f"{name}.weight"] = torch.from_numpy(w.T.copy())
    return sd


# ------------------------------------------------------------------------------------
# The network.

class _Affine(nn.Module):
    """dlib's affine layer in CONV mode: ``gamma[c] * x + beta[c]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1), requires_grad=False)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: sum over the max of each dimension, each input zero outside its extent."""
    if a.shape == b.shape:
        return a + b
    if a.numel() < b.numel():
        a, b = b, a
    shape = [max(x, y) for x, y in zip(a.shape, b.shape)]
    if list(a.shape) == shape:
        out = a.clone()
    else:
        out = a.new_zeros(shape).contiguous(memory_format=torch.channels_last)
        out[:, : a.shape[1], : a.shape[2], : a.shape[3]] = a
    out[:, : b.shape[1], : b.shape[2], : b.shape[3]] += b
    return out


class _Block(nn.Module):
    """One residual block (see the module docstring)."""

    def __init__(self, in_channels: int, channels: int, down: bool, fold: bool) -> None:
        super().__init__()
        stride, pad = (2, 0) if down else (1, 1)
        self.down = down
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, pad)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.affine1: nn.Module = nn.Identity() if fold else _Affine(channels)
        self.affine2: nn.Module = nn.Identity() if fold else _Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.affine1(self.conv1(x)), inplace=True)
        y = self.affine2(self.conv2(y))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_padded(y, shortcut), inplace=True)


class _Stem(nn.Module):
    def __init__(self, fold: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, 2, 0)
        self.affine: nn.Module = nn.Identity() if fold else _Affine(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.affine(self.conv(x)), inplace=True), 3, 2)


class _GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class DlibResNet(TorchEmbeddingNet):
    """dlib's face-recognition ResNet; build with :func:`load_dlib_resnet`.

    Args:
        fold_affine: fold each affine layer into the conv before it (faster;
            differences are float rounding only).
    """

    backbone_dim = BACKBONE_DIM
    stage_widths = (32, 64, 128, 256, 256)

    def __init__(self, fold_affine: bool = True) -> None:
        super().__init__()
        self.fold_affine = fold_affine
        self.register_buffer("input_mean", torch.zeros(3))
        blocks: list[nn.Module] = []
        in_c = 32
        for n, down in BLOCKS:
            blocks.append(_Block(in_c, n, down, fold_affine))
            in_c = n
        self.backbone = nn.Sequential(_Stem(fold_affine), *blocks, _GlobalAvgPool())
        self.embedding = nn.Linear(BACKBONE_DIM, EMBEDDING_DIM, bias=False)
        self.weights_sha256 = ""
        self.requires_grad_(False)

    def preprocess(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 150, 150, 3)`` RGB -> float ``(N, 3, 150, 150)`` as dlib's input layer.

        ``(pixel - channel_mean) / 256`` in float32; the result is a permuted
        view (channels-last memory layout).
        """
        if chips.dtype != torch.uint8 or chips.ndim != 4 or tuple(chips.shape[1:]) != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"DlibResNet.preprocess needs a uint8 (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) "
                             f"tensor, got {chips.dtype} {tuple(chips.shape)}")
        x = (chips.to(torch.float32) - self.input_mean.to(chips.device)) / 256.0
        return x.permute(0, 3, 1, 2)

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at the end of each level (:data:`STAGE_ENDS`)."""
        outputs = []
        for index, module in enumerate(self.backbone[: STAGE_ENDS[-1] + 1]):
            x = module(x)
            if index in STAGE_ENDS:
                outputs.append(x)
        return outputs

    def stage_end_modules(self) -> list[nn.Module]:
        return [self.backbone[index] for index in STAGE_ENDS]

    def load_raw_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load weights named as by :func:`raw_state_dict`, folding affines when configured."""
        names = {k for k in sd}
        expected = set(raw_state_dict_keys())
        if names != expected:
            missing, extra = sorted(expected - names), sorted(names - expected)
            raise ValueError(f"dlib ResNet weights: missing {missing[:5]}, unexpected {extra[:5]}")
        with torch.no_grad():
            self.input_mean.copy_(sd["input_mean"])
            self.embedding.weight.copy_(sd["embedding.weight"])
            convs = [("stem.conv", "stem.affine", self.backbone[0].conv, self.backbone[0].affine)]
            for b in range(len(BLOCKS)):
                blk = self.backbone[1 + b]
                convs.append((f"blocks.{b}.conv1", f"blocks.{b}.affine1", blk.conv1, blk.affine1))
                convs.append((f"blocks.{b}.conv2", f"blocks.{b}.affine2", blk.conv2, blk.affine2))
            for conv_name, aff_name, conv, aff in convs:
                w, bias = sd[f"{conv_name}.weight"], sd[f"{conv_name}.bias"]
                g, beta = sd[f"{aff_name}.gamma"], sd[f"{aff_name}.beta"]
                if tuple(w.shape) != tuple(conv.weight.shape):
                    raise ValueError(f"dlib ResNet weights: {conv_name}.weight has shape "
                                     f"{tuple(w.shape)}, expected {tuple(conv.weight.shape)}")
                if self.fold_affine:
                    conv.weight.copy_(w * g.view(-1, 1, 1, 1))
                    conv.bias.copy_(bias * g + beta)
                else:
                    conv.weight.copy_(w)
                    conv.bias.copy_(bias)
                    aff.gamma.copy_(g.view(1, -1, 1, 1))
                    aff.beta.copy_(beta.view(1, -1, 1, 1))
        self.to(memory_format=torch.channels_last)


def raw_state_dict_keys() -> list[str]:
    """The keys :func:`raw_state_dict` produces."""
    keys = ["input_mean"]
    for _kind, _req, name in expected_layers():
        if name.endswith(("conv", "conv1", "conv2")):
            keys += [f"{name}.weight", f"{name}.bias"]
        elif "affine" in name:
            keys += [f"{name}.gamma", f"{name}.beta"]
        elif name == "embedding":
            keys.append("embedding.weight")
    return keys


def default_model_path() -> Path:
    """The packaged ``dlib_face_recognition_resnet_model_v1.dat``."""
    from fiqa_bench.pipeline.paths import dlib_model_file

    return dlib_model_file(MODEL_FILE)


def load_dlib_resnet(
    path: str | os.PathLike[str] | None = None,
    fold_affine: bool = True,
) -> DlibResNet:
    """A :class:`DlibResNet` (eval mode, CPU) with the weights of dlib's ``.dat`` file.

    Args:
        path: the .dat file; None = the one in the face_recognition_models package.
        fold_affine: see :class:`DlibResNet`.

    The file's sha256 is available as ``model.weights_sha256``.
    """
    p = Path(path) if path is not None else default_model_path()
    if not p.is_file():
        raise FileNotFoundError(f"dlib ResNet weights {p} do not exist")
    data = p.read_bytes()  # parsed and hashed from one read
    model = DlibResNet(fold_affine=fold_affine)
    model.load_raw_state_dict(raw_state_dict(parse_dlib_network(data, str(p))))
    model.weights_sha256 = hashlib.sha256(data).hexdigest()
    return model.eval()


CARD = ModelCard(
    name="dlib-resnet",
    description="dlib's ResNet-29 face recognition model (128-d), ported to PyTorch from its .dat file",
    template="dlib150",
    embedding_dim=EMBEDDING_DIM,
    weights=f"{MODEL_FILE} (from $FIQA_BENCH_DLIB_MODELS, else the face_recognition_models package)",
)


def build(weights: Path | None, device: str) -> TorchRecognitionModel:
    """``dlib-resnet`` on ``device``: dlib's published ``.dat`` file, or the ``.dat`` file ``weights``."""
    path = Path(weights) if weights is not None else default_model_path()
    net = load_dlib_resnet(path)
    return TorchRecognitionModel(replace(CARD, weights=str(path)), net, chip_size=CHIP_SIZE,
                                 weights_digest=net.weights_sha256, device=device)


register_model(CARD, build, aliases=("dlib",))

__all__ = ["BLOCKS", "DlibResNet", "expected_layers", "load_dlib_resnet", "raw_state_dict"]
