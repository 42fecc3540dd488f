"""MobileFaceNet (Chen et al., 2018) from faceplugin's ONNX export, ported to PyTorch.

The weights are those of ``fr_feature.onnx`` from the npm package
``faceplugin-face-recognition-js`` 0.0.1 (MIT; the package does not say what
data the model was trained on), read in place from
``<models root>/faceplugin-fr/`` (sha256-checked, never copied) with the
``onnx`` package (:mod:`fiqa_bench.formats.onnx_graph`); ``onnxruntime`` is not needed.
The export (opset 9, PyTorch 1.10) has every batch norm folded into the
convolution before it, so each convolution has a bias and the network is
convolutions, PReLUs and residual sums only: 50 Conv, 33 PRelu, 12 Add and a
final Reshape; 1,190,336 parameters (1.19 M).

Architecture (input ``x`` of shape ``(N, 3, 112, 112)``)
----------------------------------------------------------
::

    x = (chip - 127.5) / 128                                     # RGB
    x = P(conv3x3/2(x))                       64 x 56 x 56        # conv1
    x = P(dwconv3x3(x))                       64 x 56 x 56        # conv2_dw     -> stage 1
    x = D(x; 64 -> 64, e=128, s=2), 4 x R(64, e=128)      28 x 28  # conv_23, conv_3  -> stage 2
    x = D(x; 64 -> 128, e=256, s=2), 6 x R(128, e=256)    14 x 14  # conv_34, conv_4  -> stage 3
    x = D(x; 128 -> 128, e=512, s=2), 2 x R(128, e=256)    7 x 7   # conv_45, conv_5
    x = P(conv1x1(x))                         512 x 7 x 7         # conv_6_sep   -> stage 4
    b = flatten(dwconv7x7(x))                 512                 # conv_6_dw (GDConv): backbone
    e = W b + c                               512                 # linear (+ BatchNorm1d, folded)

with ``P(y) = max(y, 0) + a_c min(y, 0)`` a per-channel PReLU, every
convolution followed by its (folded) batch norm, and the bottleneck

    D(x; C -> C', e, s) = conv1x1_{e->C'}( P(dwconv3x3/s( P(conv1x1_{C->e}(x)) )) )
    R(x; C, e)          = x + D(x; C -> C, e, 1)

(the projection is linear: no activation after it or after the sum).
Depthwise convolutions have padding 1, except the 7x7 global depthwise
convolution (GDConv, padding 0), which weights each position of the last
7x7 map per channel instead of averaging it.

Split for :class:`TorchEmbeddingNet`: ``backbone`` runs through the GDConv
and flattens, ``backbone_dim`` = 512; ``embedding`` is the final linear
projection (a 1x1 convolution in the export, ``nn.Linear(512, 512)`` here,
with the BatchNorm1d folded into its bias).  The GDConv output is where the
network has pooled its spatial map into one vector, the counterpart of
dlib's global average pool and the input of the last layer, which is where
SER-FIQ puts its dropout and what PFE and SDD-FIQA's head read.  The four
stages (:data:`STAGE_WIDTHS`) are the resolution levels, 56, 28, 14 and 7
pixels; the last ends after ``conv_6_sep`` (512 x 7 x 7, the last spatial
map, before the GDConv).  The embedding is returned unnormalised by the
network (the export's output); :class:`TorchRecognitionModel` L2-normalises.

Reading the weights
-------------------
:func:`onnx_state_dict` walks the graph's nodes in order against the
architecture (:func:`layer_plan`): each node must be the expected operator,
read the tensor the previous step produced (a sum must add the block's input
to its projection), and each convolution's kernel, stride, padding, groups
and dilation and each weight, bias and PReLU slope's shape must match.  The
first difference is one ``ValueError`` naming the node or the initializer,
the shape expected and the shape found.  Any ONNX file of this architecture
loads (``mobilefacenet-512@PATH``); only the published file is checked
against its sha256.

Tiny weights
------------
Batch-norm folding left many parameters vanishingly small (dead channels):
199,532 of the 1.19 M are below 1e-10 in magnitude, 8,938 of them float32
denormals (below 1.2e-38), and the activations they produce go denormal
too.  x86 CPUs compute on denormals tens of times slower, which made the
network (and onnxruntime on the file) 4-8x slower than its arithmetic
warrants.  The loader therefore sets every parameter below
:data:`FLUSH_BELOW` = 1e-10 to 0 (``flush_below=0`` keeps the file's values;
the setting is part of the model's fingerprint).  The outputs do not change:
on 128 LFW chips they are bit-identical to those of the exact values, on
random-noise chips within 1e-6.

Agreement and speed
-------------------
The export fixes the batch at 1; the port takes any batch size.  Against
onnxruntime running the file as exported, on 512 LFW chips
(``tests/test_mobilefacenet.py``), the minimum cosine is 1 - 1.1e-12 and
the largest element difference 9.2e-7.  The network runs in channels-last
memory format (the preprocessed input is already channels-last, a permuted
NHWC tensor), and the backbone runs a batch in slices of
:data:`MICRO_BATCH` = 8 images (:class:`SlicedSequential`; exact, since
nothing depends on batch statistics), which keeps the activations in the
CPU caches: on 2 threads, batches of 64 went from about 180 to 360 images/s.
``benchmarks/bench_mobilefacenet.py`` on 2 cores (Xeon, AVX-512; the
machine was shared, so the numbers are approximate), images/s:

=============================================  ==========  =========
pipeline                                        batch 64    batch 1
=============================================  ==========  =========
this port                                       301         205
onnxruntime on the file (best: denormals 0)     36          33
onnxruntime on the file, tiny weights zeroed    217         194
=============================================  ==========  =========

Reference:
    S. Chen, Y. Liu, X. Gao, Z. Han. "MobileFaceNets: Efficient CNNs for
    Accurate Real-Time Face Verification on Mobile Devices." CCBR 2018
    (arXiv:1804.07573).  Module names follow the widely used PyTorch
    implementation in TreB1eN/InsightFace_Pytorch (``model.py``).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fiqa_bench.formats.onnx_graph import OnnxError, OnnxGraph, OnnxNode, read_onnx
from fiqa_bench.recognition.base import ModelCard, TorchEmbeddingNet, TorchRecognitionModel
from fiqa_bench.recognition.registry import register_model

MODEL_DIR = "faceplugin-fr"
"""Folder of the published file under the models root."""
MODEL_FILE = "fr_feature.onnx"
SHA256 = "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"
"""sha256 of ``fr_feature.onnx`` from ``faceplugin-face-recognition-js`` 0.0.1."""
CHIP_SIZE = 112
INPUT_MEAN, INPUT_SCALE = 127.5, 128.0
"""Preprocessing: ``(pixel - 127.5) / 128``."""
EMBEDDING_DIM = 512
BACKBONE_DIM = 512
"""Length of the GDConv output (the backbone's)."""
STEM_WIDTH = 64
SEP_WIDTH = 512
"""Channels of ``conv_6_sep`` and of the GDConv."""
GDC_KERNEL = CHIP_SIZE // 16
"""Side of the last feature map and of the GDConv kernel: 112 / 16 = 7."""
MICRO_BATCH = 8
"""The backbone runs a batch in slices of this many images (see "Agreement and speed")."""
FLUSH_BELOW = 1e-10
"""Parameters smaller than this in magnitude are set to 0 when loaded (see "Tiny weights")."""


@dataclass(frozen=True)
class StageSpec:
    """One downsampling bottleneck and the residual bottlenecks after it.

    Attributes:
        down: module name of the stride-2 bottleneck (``conv_23`` ...).
        blocks: module name of the residual bottlenecks (``conv_3`` ...).
        in_channels: channels entering the stage.
        channels: channels of the stage's bottleneck outputs.
        down_expansion: inner width of the stride-2 bottleneck.
        num_blocks: residual bottlenecks.
        expansion: inner width of the residual bottlenecks.
    """

    down: str
    blocks: str
    in_channels: int
    channels: int
    down_expansion: int
    num_blocks: int
    expansion: int


STAGES: tuple[StageSpec, ...] = (
    StageSpec("conv_23", "conv_3", 64, 64, 128, 4, 128),
    StageSpec("conv_34", "conv_4", 64, 128, 256, 6, 256),
    StageSpec("conv_45", "conv_5", 128, 128, 512, 2, 256),
)
"""The three bottleneck stages (56 -> 28 -> 14 -> 7 pixels)."""
STAGE_WIDTHS = (STEM_WIDTH, 64, 128, SEP_WIDTH)
"""Channels at the end of the four resolution stages (56, 28, 14, 7 px)."""
STAGE_ENDS = (1, 3, 5, 8)
"""Indices in ``backbone`` of the last module of each stage: ``conv2_dw``,
``conv_3``, ``conv_4``, ``conv_6_sep``."""


# ------------------------------------------------------------------------------------
# The network.

def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A convolution with its batch norm folded in: bias, padding ``kernel // 2`` except for the 7x7 GDConv."""
    padding = 0 if kernel == GDC_KERNEL else kernel // 2
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding, groups=groups, bias=True)


class ConvPReLU(nn.Module):
    """``PReLU(conv(x))`` (TreB1eN's ``Conv_block`` with its batch norm folded)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = _conv(in_channels, out_channels, kernel, stride, groups)
        self.prelu = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.conv(x))


class Bottleneck(nn.Module):
    """``D(x)`` or ``x + D(x)``: 1x1 expansion, 3x3 depthwise, 1x1 linear projection (``Depth_Wise``).

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        expansion: inner width (TreB1eN's ``groups``).
        stride: stride of the depthwise convolution.
        residual: add the input (needs ``stride == 1`` and equal widths).
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: int, stride: int, residual: bool) -> None:
        super().__init__()
        if residual and (stride != 1 or in_channels != out_channels):
            raise ValueError(f"a residual bottleneck needs stride 1 and equal widths, got stride {stride}, "
                             f"{in_channels} -> {out_channels}")
        self.residual = residual
        self.expand = ConvPReLU(in_channels, expansion, 1)
        self.dw = ConvPReLU(expansion, expansion, 3, stride, groups=expansion)
        self.project = _conv(expansion, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return y.add_(x) if self.residual else y


class SlicedSequential(nn.Sequential):
    """An :class:`nn.Sequential` that runs a batch in slices of :data:`MICRO_BATCH` images.

    Exact, not an approximation: the network has no batch statistics (its
    batch norms are folded), so each image's output depends on that image
    only.  Slices keep the activations of a few images in the CPU caches
    instead of streaming those of the whole batch through memory at every
    layer.  On other devices (a GPU) the batch runs whole.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.shape[0] <= MICRO_BATCH or x.device.type != "cpu":
            return super().forward(x)
        return torch.cat([super(SlicedSequential, self).forward(part) for part in x.split(MICRO_BATCH)])


def micro_batches(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``x`` in slices of :data:`MICRO_BATCH` images on the CPU; whole on an accelerator."""
    return x.split(MICRO_BATCH) if x.device.type == "cpu" else (x,)


def _stage_modules(spec: StageSpec) -> list[tuple[str, nn.Module]]:
    down = Bottleneck(spec.in_channels, spec.channels, spec.down_expansion, 2, residual=False)
    blocks = nn.Sequential(*[Bottleneck(spec.channels, spec.channels, spec.expansion, 1, residual=True)
                             for _ in range(spec.num_blocks)])
    return [(spec.down, down), (spec.blocks, blocks)]


class MobileFaceNet(TorchEmbeddingNet):
    """MobileFaceNet with folded batch norms; build with :func:`load_mobilefacenet`.

    ``backbone`` holds ``conv1`` ... ``conv_6_dw`` and a flatten,
    ``(N, 3, 112, 112) -> (N, 512)``; ``embedding`` is ``linear``,
    ``(N, 512) -> (N, 512)``.
    """

    backbone_dim = BACKBONE_DIM
    stage_widths = STAGE_WIDTHS

    def __init__(self) -> None:
        super().__init__()
        modules: list[tuple[str, nn.Module]] = [
            ("conv1", ConvPReLU(3, STEM_WIDTH, 3, 2)),
            ("conv2_dw", ConvPReLU(STEM_WIDTH, STEM_WIDTH, 3, groups=STEM_WIDTH)),
        ]
        for spec in STAGES:
            modules += _stage_modules(spec)
        modules += [
            ("conv_6_sep", ConvPReLU(STAGES[-1].channels, SEP_WIDTH, 1)),
            ("conv_6_dw", _conv(SEP_WIDTH, SEP_WIDTH, GDC_KERNEL, groups=SEP_WIDTH)),
            ("flatten", nn.Flatten(1)),
        ]
        self.backbone = SlicedSequential(OrderedDict(modules))
        self.embedding = nn.Linear(BACKBONE_DIM, EMBEDDING_DIM, bias=True)
        self.weights_sha256 = ""
        self.flush_below = 0.0
        self.requires_grad_(False)
        self.to(memory_format=torch.channels_last)

    def preprocess(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, 112, 112, 3)`` RGB -> float ``(N, 3, 112, 112)``, ``(x - 127.5) / 128``.

        The result is a permuted view of the NHWC values (channels-last
        memory layout), exactly the float32 values the export is fed.
        """
        if chips.dtype != torch.uint8 or chips.ndim != 4 or tuple(chips.shape[1:]) != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"MobileFaceNet.preprocess needs a uint8 (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) tensor, "
                             f"got {chips.dtype} {tuple(chips.shape)}")
        x = chips.to(torch.float32).sub_(INPUT_MEAN).div_(INPUT_SCALE)
        return x.permute(0, 3, 1, 2)

    def stage_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at the end of each stage (:data:`STAGE_ENDS`): 64x56x56, 64x28x28, 128x14x14, 512x7x7."""
        slices = []
        for part in micro_batches(x):  # as the backbone
            outputs = []
            for index, module in enumerate(self.backbone[: STAGE_ENDS[-1] + 1]):
                part = module(part)
                if index in STAGE_ENDS:
                    outputs.append(part)
            slices.append(outputs)
        return [torch.cat(stage) for stage in zip(*slices)]

    def stage_end_modules(self) -> list[nn.Module]:
        return [self.backbone[index] for index in STAGE_ENDS]


# ------------------------------------------------------------------------------------
# The expected graph and the ONNX -> torch mapping.

@dataclass(frozen=True)
class Step:
    """One node of the expected graph, in order.

    Attributes:
        op: ONNX operator: ``Conv``, ``PRelu``, ``Add`` or ``Reshape``.
        name: parameter prefix in :class:`MobileFaceNet`'s state dict
            (``backbone.conv_3.0.dw.conv``); for ``Add``, the block's name.
        channels: output channels (Conv, PRelu).
        in_per_group: input channels per group (Conv).
        kernel, stride, padding, groups: the convolution's (Conv).
    """

    op: str
    name: str
    channels: int = 0
    in_per_group: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.op == "PRelu":
            return (self.channels, 1, 1)
        return (self.channels, self.in_per_group, self.kernel, self.kernel)


def _conv_steps(name: str, conv: nn.Conv2d) -> Step:
    return Step("Conv", name, conv.out_channels, conv.in_channels // conv.groups, conv.kernel_size[0],
                conv.stride[0], conv.padding[0], conv.groups)


def _module_steps(name: str, module: nn.Module) -> list[Step]:
    if isinstance(module, ConvPReLU):
        return [_conv_steps(f"{name}.conv", module.conv), Step("PRelu", f"{name}.prelu", module.conv.out_channels)]
    if isinstance(module, nn.Conv2d):
        return [_conv_steps(name, module)]
    if isinstance(module, Bottleneck):
        steps = _module_steps(f"{name}.expand", module.expand) + _module_steps(f"{name}.dw", module.dw)
        steps += _module_steps(f"{name}.project", module.project)
        return steps + ([Step("Add", name)] if module.residual else [])
    if isinstance(module, nn.Sequential):
        return [s for child_name, child in module.named_children() for s in _module_steps(f"{name}.{child_name}", child)]
    if isinstance(module, nn.Flatten):
        return []
    raise TypeError(f"no ONNX steps for {type(module).__name__}")  # pragma: no cover - architecture is fixed


def layer_plan() -> list[Step]:
    """The nodes :func:`onnx_state_dict` expects, in graph order (96 for this architecture)."""
    net = MobileFaceNet()
    steps = _module_steps("backbone", net.backbone)
    steps.append(Step("Conv", "embedding", EMBEDDING_DIM, BACKBONE_DIM, 1, 1, 0, 1))  # the final 1x1 conv
    steps.append(Step("Reshape", "flatten"))
    return steps


def _check_shape(source: str, tensor: str, node: OnnxNode, step: Step, expected: tuple[int, ...],
                 found: tuple[int, ...]) -> None:
    if tuple(found) != tuple(expected):
        raise ValueError(f"{source}: tensor {tensor!r} ({node.op_type} node {node.name!r}, MobileFaceNet "
                         f"{step.name}) has shape {tuple(found)}, expected {tuple(expected)}")


def _initializer(graph: OnnxGraph, source: str, node: OnnxNode, index: int, what: str) -> tuple[str, np.ndarray]:
    if len(node.inputs) <= index or node.inputs[index] not in graph.initializers:
        raise ValueError(f"{source}: {node.op_type} node {node.name!r} has no {what} initializer "
                         f"(inputs {list(node.inputs)})")
    name = node.inputs[index]
    array = graph.initializers[name]
    if array.dtype != np.float32 and what != "shape":
        raise ValueError(f"{source}: tensor {name!r} ({what} of {node.name!r}) is {array.dtype}, expected float32")
    return name, array


def _check_conv_attrs(source: str, node: OnnxNode, step: Step) -> None:
    expected = {"kernel_shape": [step.kernel] * 2, "strides": [step.stride] * 2, "pads": [step.padding] * 4,
                "group": step.groups, "dilations": [1, 1]}
    defaults = {"strides": [1, 1], "pads": [0, 0, 0, 0], "group": 1, "dilations": [1, 1],
                "kernel_shape": expected["kernel_shape"]}
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", b"NOTSET"):
        raise ValueError(f"{source}: Conv node {node.name!r} (MobileFaceNet {step.name}) has auto_pad "
                         f"{auto_pad!r}, expected explicit pads {expected['pads']}")
    for key, value in expected.items():
        found = node.attrs.get(key, defaults[key])
        if found != value:
            raise ValueError(f"{source}: Conv node {node.name!r} (MobileFaceNet {step.name}) has {key} "
                             f"{found}, expected {value}")


def onnx_state_dict(graph: OnnxGraph, source: str) -> dict[str, torch.Tensor]:
    """Check ``graph`` against the architecture and return its weights under :class:`MobileFaceNet`'s names.

    Walks the nodes in order beside :func:`layer_plan` (see the module
    docstring).  ``source`` names the file in errors.

    Raises:
        ValueError: the first node, attribute, data flow or tensor shape that
            differs from MobileFaceNet, naming it with the expected and
            found values.
    """
    inputs = graph.data_inputs
    if len(inputs) != 1 or inputs[0].shape is None or tuple(inputs[0].shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
        found = [(v.name, v.shape) for v in inputs]
        raise ValueError(f"{source}: expected one input of shape (N, 3, {CHIP_SIZE}, {CHIP_SIZE}), found {found}")
    plan = layer_plan()
    nodes = graph.nodes
    state: dict[str, torch.Tensor] = {}
    current = inputs[0].name
    block_input: dict[str, str] = {}  # residual block -> the tensor its sum adds back
    for i, step in enumerate(plan):
        if i >= len(nodes):
            raise ValueError(f"{source}: the graph ends after {len(nodes)} nodes; expected {len(plan)}, "
                             f"next a {step.op} node (MobileFaceNet {step.name})")
        node = nodes[i]
        where = f"{source}: node {i} ({node.op_type} {node.name!r})"
        if node.op_type != step.op or node.domain not in ("", "ai.onnx"):
            raise ValueError(f"{where}: expected a {step.op} node (MobileFaceNet {step.name})")
        if step.op == "Conv" and step.name.endswith(".expand.conv"):
            block_input[step.name.removesuffix(".expand.conv")] = current
        if step.op == "Add":
            expected_inputs = {block_input.get(step.name, "?"), current}
            if len(node.inputs) != 2 or set(node.inputs) != expected_inputs:
                raise ValueError(f"{where}: adds {list(node.inputs)}, expected the input and the output of "
                                 f"bottleneck {step.name} ({sorted(expected_inputs)})")
        elif not node.inputs or node.inputs[0] != current:
            raise ValueError(f"{where}: reads {node.inputs[0] if node.inputs else None!r}, expected {current!r} "
                             f"(the output of the node before, MobileFaceNet {step.name})")
        if step.op == "Conv":
            _check_conv_attrs(source, node, step)
            w_name, weight = _initializer(graph, source, node, 1, "weight")
            _check_shape(source, w_name, node, step, step.weight_shape, weight.shape)
            b_name, bias = _initializer(graph, source, node, 2, "bias")
            _check_shape(source, b_name, node, step, (step.channels,), bias.shape)
            if step.name == "embedding":
                weight = weight.reshape(step.channels, step.in_per_group)
            state[f"{step.name}.weight"] = torch.from_numpy(weight.copy())
            state[f"{step.name}.bias"] = torch.from_numpy(bias.copy())
        elif step.op == "PRelu":
            s_name, slope = _initializer(graph, source, node, 1, "slope")
            if slope.shape not in (step.weight_shape, (step.channels,)):
                _check_shape(source, s_name, node, step, step.weight_shape, slope.shape)
            state[f"{step.name}.weight"] = torch.from_numpy(slope.reshape(-1).copy())
        elif step.op == "Reshape":
            s_name, shape = _initializer(graph, source, node, 1, "shape")
            flat = [int(v) for v in shape.reshape(-1)]
            if len(flat) != 2 or flat[0] not in (-1, 0, 1) or flat[1] not in (-1, EMBEDDING_DIM):
                raise ValueError(f"{where}: reshapes to {flat} (tensor {s_name!r}), expected (N, "
                                 f"{EMBEDDING_DIM}) such as [1, -1]")
        if len(node.outputs) != 1:
            raise ValueError(f"{where}: has {len(node.outputs)} outputs, expected 1")
        current = node.outputs[0]
    if len(nodes) > len(plan):
        extra = nodes[len(plan)]
        raise ValueError(f"{source}: {len(nodes) - len(plan)} more nodes than MobileFaceNet's {len(plan)}, "
                         f"from node {len(plan)} ({extra.op_type} {extra.name!r})")
    outputs = [v.name for v in graph.outputs]
    if outputs != [current]:
        raise ValueError(f"{source}: the graph's outputs are {outputs}, expected [{current!r}] (the embedding)")
    return state


# ------------------------------------------------------------------------------------
# Loading and registration.

def default_model_path() -> Path:
    """``<models root>/faceplugin-fr/fr_feature.onnx``; a clear error if absent."""
    from fiqa_bench.pipeline.paths import default_models_root

    folder = default_models_root() / MODEL_DIR
    path = folder / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"MobileFaceNet's weights {path} do not exist (set $FIQA_BENCH_MODELS to a "
                                f"folder holding {MODEL_DIR}/{MODEL_FILE}, or pass mobilefacenet-512@FILE.onnx)")
    return path


def read_checked(path: Path, sha256: str | None) -> tuple[bytes, str]:
    """The bytes of ``path`` and their sha256, after checking it against ``sha256`` (when given)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise ValueError(f"{path}: sha256 {digest} is not that of faceplugin's {MODEL_FILE} ({sha256}); "
                         f"the file is damaged or another model (pass another model's file as "
                         f"mobilefacenet-512@FILE.onnx)")
    return data, digest


def flush_tiny(state: dict[str, torch.Tensor], below: float) -> dict[str, torch.Tensor]:
    """``state`` with every value of magnitude below ``below`` set to 0 (``below <= 0``: unchanged)."""
    if below <= 0:
        return state
    return {k: torch.where(v.abs() < below, torch.zeros_like(v), v) for k, v in state.items()}


def load_mobilefacenet(
    path: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    flush_below: float = FLUSH_BELOW,
) -> MobileFaceNet:
    """A :class:`MobileFaceNet` (eval mode, CPU) with the weights of an ONNX file.

    Args:
        path: the ``.onnx`` file; None = the published ``fr_feature.onnx``
            (:func:`default_model_path`), whose sha256 is always checked.
        sha256: the digest ``path`` must have (None: any file of this architecture).
        flush_below: parameters of smaller magnitude are set to 0 (see
            "Tiny weights" in the module docstring); 0 keeps the file's values.

    The file's sha256 is available as ``model.weights_sha256``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: wrong sha256, not an ONNX model, or not this architecture.
    """
    if path is None:
        p, sha256 = default_model_path(), SHA256
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"MobileFaceNet weights {p} do not exist")
    data, digest = read_checked(p, sha256)
    try:
        graph = read_onnx(p, data).graph
    except OnnxError as exc:
        raise ValueError(str(exc)) from None
    network = MobileFaceNet()
    state = onnx_state_dict(graph, str(p))
    network.load_state_dict(flush_tiny(state, flush_below), strict=True)
    network.weights_sha256 = digest
    network.flush_below = flush_below
    return network.eval()


CARD = ModelCard(name="mobilefacenet-512",
                 description="MobileFaceNet (faceplugin-face-recognition-js, MIT), 112x112 ArcFace chips, 512-d, "
                             "ported to PyTorch from its ONNX file",
                 template="arcface112", embedding_dim=EMBEDDING_DIM,
                 weights=f"{MODEL_FILE} (faceplugin-face-recognition-js 0.0.1, MIT)", detector="retinaface")


def build(weights: Path | None, device: str) -> TorchRecognitionModel:
    """``mobilefacenet-512`` on ``device``: the published file, or the ONNX file ``weights``."""
    network = load_mobilefacenet(weights)
    card = CARD if weights is None else replace(CARD, weights=f"{Path(weights).name} (user ONNX file)")
    digest = f"{network.weights_sha256}:flush-below-{network.flush_below:g}"  # both change the outputs
    return TorchRecognitionModel(card, network, chip_size=CHIP_SIZE, weights_digest=digest, device=device)


register_model(CARD, build, aliases=("faceplugin", "mobilefacenet"))

__all__ = ["MobileFaceNet", "STAGES", "Step", "layer_plan", "load_mobilefacenet", "onnx_state_dict"]
