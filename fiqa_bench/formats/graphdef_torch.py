"""A frozen TensorFlow graph (as read by :mod:`fiqa_bench.formats.graphdef`) run as a PyTorch module.

:class:`GraphModule` walks the graph from one placeholder to one output
tensor: the nodes that output depends on are visited in topological order
and each becomes a step, with the weights taken from the ``Const`` nodes it
reads (through ``Identity``).  Supported operations, with TensorFlow's
semantics:

* ``Conv2D`` and ``DepthwiseConv2dNative``, ``NHWC``, any strides and
  dilations, padding ``VALID`` or ``SAME``.  ``SAME`` pads each spatial
  dimension of size ``n`` (kernel ``k``, stride ``s``, dilation ``d``) by
  ``total = max((ceil(n / s) - 1) s + (k - 1) d + 1 - n, 0)`` zeros,
  ``floor(total / 2)`` before and the rest after: with stride 2 on an even
  size the extra zero goes to the bottom and right, which PyTorch's
  symmetric ``padding`` cannot express, so those inputs are padded
  explicitly.  Weights: ``Conv2D`` filters are HWIO, transposed to PyTorch's
  OIHW; depthwise filters are ``(H, W, C, M)`` (M = channel multiplier),
  output channel ``c M + m``, which is PyTorch's ``groups = C`` layout
  ``(C M, 1, H, W)`` after a transpose.
* ``FusedBatchNorm`` / ``FusedBatchNormV3`` in inference mode
  (``is_training`` false): ``y = (x - mean) gamma / sqrt(var + epsilon) +
  beta`` with the node's own ``epsilon``.  By default it is folded into the
  convolution before it when that convolution feeds nothing else
  (``W' = W gamma / sqrt(var + eps)`` per output channel, bias ``beta - mean
  gamma / sqrt(var + eps)``, computed in float64 and stored as float32);
  otherwise it is a per-channel affine step.
* ``Relu``, ``Relu6``, ``Sigmoid``, ``Add`` / ``AddV2`` (of two computed
  tensors of the same rank; these activations and sums write into their
  input when nothing else reads it), ``AvgPool`` (``VALID``), ``Reshape`` (to a
  constant shape), ``MatMul`` by a constant matrix (``transpose_a`` /
  ``transpose_b`` honoured), ``BiasAdd``, ``Identity``.

Anything else, a ``data_format`` other than ``NHWC``, or a second output of
a node (``x:1``) is a ValueError naming the node.  Inside the module 4-d
tensors are kept channels-first (NCHW, PyTorch's layout); the module takes
and returns TensorFlow's layout (NHWC), and a ``Reshape`` of a 4-d tensor
first goes back to NHWC so that the element order is TensorFlow's.

Why our own code: the library that runs a GraphDef is TensorFlow, and the
converter to ONNX (``tf2onnx``, after which ``onnx2torch`` or onnxruntime
could run it) loads the graph with TensorFlow too.  ``tensorflow-cpu`` 2.21.0
is a 274 MB wheel, 335 MB with the 31 wheels it pulls in (pip, Python 3.11),
to run the dozen operations above for one method (LightQNet).  Against
TensorFlow's own outputs the port agrees to about 3e-7
(``tests/test_lightqnet.py``, reference made by
``benchmarks/lightqnet_reference.py`` in a separate environment).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fiqa_bench.formats.graphdef import Node

BATCH_NORM_OPS = ("FusedBatchNorm", "FusedBatchNormV3")
CONV_OPS = ("Conv2D", "DepthwiseConv2dNative")


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding of one dimension: (zeros before, zeros after)."""
    extent = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def conv_weight_from_tf(weight: np.ndarray, depthwise: bool) -> np.ndarray:
    """A TensorFlow filter as PyTorch's ``(out, in / groups, H, W)``.

    ``Conv2D``: HWIO -> OIHW.  ``DepthwiseConv2dNative``: ``(H, W, C, M)`` ->
    ``(C M, 1, H, W)``, output channel ``c M + m`` as TensorFlow orders it.
    """
    if weight.ndim != 4:
        raise ValueError(f"a convolution filter must be 4-d, got shape {weight.shape}")
    if depthwise:
        h, w, c, m = weight.shape
        return np.ascontiguousarray(weight.transpose(2, 3, 0, 1).reshape(c * m, 1, h, w))
    return np.ascontiguousarray(weight.transpose(3, 2, 0, 1))


def batch_norm_affine(gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, variance: np.ndarray,
                      epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Inference batch norm as ``y = scale x + shift`` per channel (float64)."""
    scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + epsilon)
    return scale, beta.astype(np.float64) - mean.astype(np.float64) * scale


class TFConv2d(nn.Module):
    """A 2-d (or depthwise) convolution with TensorFlow's padding rules, on NCHW tensors."""

    def __init__(self, weight: np.ndarray, strides: tuple[int, int], dilations: tuple[int, int], padding: str,
                 groups: int, bias: np.ndarray | None = None) -> None:
        super().__init__()
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"padding must be SAME or VALID, got {padding!r}")
        self.weight = nn.Parameter(torch.from_numpy(np.asarray(weight, np.float32)), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(torch.from_numpy(np.asarray(bias, np.float32)),
                                                           requires_grad=False)
        self.strides, self.dilations, self.padding, self.groups = strides, dilations, padding, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = [(0, 0), (0, 0)]
        if self.padding == "SAME":
            pads = [tf_same_padding(x.shape[2 + i], self.weight.shape[2 + i], self.strides[i], self.dilations[i])
                    for i in range(2)]
        symmetric = all(before == after for before, after in pads)
        if not symmetric:
            x = F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
        return F.conv2d(x, self.weight, self.bias, self.strides, tuple(p[0] for p in pads) if symmetric else 0,
                        self.dilations, self.groups)

    def fold_affine(self, scale: np.ndarray, shift: np.ndarray) -> None:
        """Absorb ``y = scale conv(x) + shift`` (per output channel) into the weights and bias."""
        weight = self.weight.detach().double().numpy() * scale[:, None, None, None]
        bias = shift + scale * (0.0 if self.bias is None else self.bias.detach().double().numpy())
        self.weight = nn.Parameter(torch.from_numpy(weight.astype(np.float32)), requires_grad=False)
        self.bias = nn.Parameter(torch.from_numpy(bias.astype(np.float32)), requires_grad=False)


class ChannelAffine(nn.Module):
    """``y = scale x + shift`` along the channel axis (axis 1 of NCHW, or the last of a 2-d tensor)."""

    def __init__(self, scale: np.ndarray | None, shift: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("scale", None if scale is None else torch.from_numpy(np.asarray(scale, np.float32)))
        self.register_buffer("shift", torch.from_numpy(np.asarray(shift, np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (-1, 1, 1) if x.dim() == 4 else (-1,)
        if self.scale is not None:
            x = x * self.scale.view(view)
        return x + self.shift.view(view)


class AvgPoolValid(nn.Module):
    """TensorFlow's ``AvgPool`` with ``VALID`` padding, on NCHW tensors."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel, self.stride)


class ReshapeTF(nn.Module):
    """TensorFlow's ``Reshape`` to a constant shape (4-d inputs go back to NHWC first; 4-d outputs to NCHW)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        y = x.reshape(self.shape)
        return y.permute(0, 3, 1, 2) if y.dim() == 4 else y


class MatMulConst(nn.Module):
    """``x @ W`` with a constant ``W`` (TensorFlow's ``MatMul`` with its transpose flags)."""

    def __init__(self, weight: np.ndarray, transpose_a: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.asarray(weight, np.float32)), requires_grad=False)
        self.transpose_a = transpose_a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.t() if self.transpose_a else x) @ self.weight


class AddTensors(nn.Module):
    """Element-wise sum of two tensors of the same layout (into ``a`` when ``inplace``)."""

    def __init__(self) -> None:
        super().__init__()
        self.inplace = False

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.add_(b) if self.inplace else a + b


INPLACE_LAYERS = (nn.ReLU, nn.Hardtanh, AddTensors)


def _tensor_name(ref: str, consumer: str) -> str:
    """``"x"`` or ``"x:0"`` -> ``"x"``; another output index is not supported."""
    name, _, index = ref.partition(":")
    if index not in ("", "0"):
        raise ValueError(f"node {consumer!r} reads output {index} of {name!r}; only first outputs are supported")
    return name


def _data_inputs(node: Node) -> list[str]:
    return [_tensor_name(ref, node.name) for ref in node.inputs if not ref.startswith("^")]


def _nhwc_pair(node: Node, key: str) -> tuple[int, int]:
    values = node.attrs.get(key, [1, 1, 1, 1])
    if len(values) != 4 or values[0] != 1 or values[3] != 1:
        raise ValueError(f"node {node.name!r}: {key} must be [1, h, w, 1] (NHWC), got {values}")
    return int(values[1]), int(values[2])


def _check_nhwc(node: Node) -> None:
    layout = node.attrs.get("data_format", "NHWC")
    if layout != "NHWC":
        raise ValueError(f"node {node.name!r} ({node.op}): data_format {layout!r} is not supported, only NHWC")


def _through_identities(by_name: dict[str, Node], name: str) -> str:
    """The node whose output ``name`` is, following ``Identity`` nodes back."""
    while by_name[name].op == "Identity":
        name = _data_inputs(by_name[name])[0]
    return name


def _consumers(by_name: dict[str, Node], order: list[str]) -> Counter:
    """How many non-Identity nodes of ``order`` read each node's output (directly or through Identities)."""
    return Counter(_through_identities(by_name, i) for name in order if by_name[name].op != "Identity"
                   for i in _data_inputs(by_name[name]))


class GraphModule(nn.Module):
    """The part of a frozen graph between ``input_name`` and ``output_name`` as a PyTorch module.

    Args:
        nodes: the graph's nodes (:func:`fiqa_bench.formats.graphdef.read_graphdef`).
        input_name: the ``Placeholder`` fed with the input (NHWC for images).
        output_name: the node whose first output is returned.
        fold_batch_norm: fold inference batch norms into the convolutions before them.

    ``forward`` takes the input in TensorFlow's layout and returns the output
    in TensorFlow's layout, float32.  ``steps`` lists ``(node name, op)`` of
    what is computed, in order (folded batch norms are not steps).
    """

    def __init__(self, nodes: Sequence[Node], input_name: str, output_name: str,
                 fold_batch_norm: bool = True) -> None:
        super().__init__()
        by_name = {n.name: n for n in nodes}
        for name in (input_name, output_name):
            if name not in by_name:
                raise ValueError(f"the graph has no node {name!r}")
        if by_name[input_name].op != "Placeholder":
            raise ValueError(f"input {input_name!r} is a {by_name[input_name].op}, not a Placeholder")
        self._by_name = by_name
        order = self._topological(output_name)
        uses = _consumers(by_name, order)
        self.layers = nn.ModuleList()
        self.steps: list[tuple[str, str]] = []
        self._inputs: list[tuple[int, ...]] = []
        slot: dict[str, int] = {input_name: 0}  # computed tensor name -> value slot
        self._consts: dict[str, np.ndarray] = {}
        input_shape = by_name[input_name].attrs.get("shape")
        self._rank: dict[str, int] = {input_name: 4 if input_shape is None else len(input_shape)}
        for name in order:
            node = by_name[name]
            if name == input_name:
                continue
            if node.op == "Const":
                self._consts[name] = np.asarray(node.attrs["value"])
                continue
            if node.op == "Placeholder":
                raise ValueError(f"the output depends on a second placeholder {name!r}")
            args = _data_inputs(node)
            if node.op == "Identity":
                if args[0] in self._consts:
                    self._consts[name] = self._consts[args[0]]
                else:
                    slot[name], self._rank[name] = slot[args[0]], self._rank[args[0]]
                continue
            source = args[0]
            if (fold_batch_norm and node.op in BATCH_NORM_OPS and slot.get(source, 0) > 0
                    and uses[_through_identities(by_name, source)] == 1
                    and self.steps[slot[source] - 1][1] in CONV_OPS):
                conv = self.layers[slot[source] - 1]
                conv.fold_affine(*self._batch_norm(node))
                slot[name], self._rank[name] = slot[source], 4
                continue
            module, rank = self._layer(node)
            tensors = [a for a in args if a not in self._consts]
            missing = [a for a in tensors if a not in slot]
            if missing:
                raise ValueError(f"node {name!r} reads {missing}, which is neither computed nor constant")
            self.layers.append(module)
            self.steps.append((name, node.op))
            self._inputs.append(tuple(slot[a] for a in tensors))
            slot[name] = len(self.layers)
            self._rank[name] = rank
        self._output = slot[output_name]
        self._output_rank = self._rank[output_name]
        last_use: dict[int, int] = {}
        for step, inputs in enumerate(self._inputs):
            for s in inputs:
                last_use[s] = step
        self._release = [tuple(s for s, last in last_use.items() if last == step and s != self._output)
                         for step in range(len(self._inputs))]
        self._write_in_place()
        del self._by_name, self._consts

    def _write_in_place(self) -> None:
        """Let activations and sums overwrite their first input when no other step reads it.

        Never the module's input (the caller's tensor) nor its output.  This
        saves an allocation per step: batches of 64 run about twice as fast.
        """
        readers = Counter(s for inputs in self._inputs for s in inputs)
        for layer, inputs in zip(self.layers, self._inputs):
            if isinstance(layer, INPLACE_LAYERS) and inputs[0] not in (0, self._output) and readers[inputs[0]] == 1:
                layer.inplace = True

    # --- building ----------------------------------------------------------------------------------

    def _topological(self, output_name: str) -> list[str]:
        """Names of the nodes ``output_name`` depends on (itself included), inputs before consumers."""
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done
        stack: list[tuple[str, bool]] = [(output_name, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                state[name] = 2
                order.append(name)
                continue
            if state.get(name) == 2:
                continue
            if state.get(name) == 1:
                raise ValueError(f"the graph has a cycle through {name!r}")
            if name not in self._by_name:
                raise ValueError(f"the graph has no node {name!r}")
            state[name] = 1
            stack.append((name, True))
            for parent in reversed(_data_inputs(self._by_name[name])):
                if state.get(parent) != 2:
                    stack.append((parent, False))
        return order

    def _const(self, node: Node, index: int) -> np.ndarray:
        name = _data_inputs(node)[index]
        if name not in self._consts:
            raise ValueError(f"node {node.name!r} ({node.op}): input {index} ({name!r}) must be a constant")
        return self._consts[name]

    def _batch_norm(self, node: Node) -> tuple[np.ndarray, np.ndarray]:
        _check_nhwc(node)
        if node.attrs.get("is_training", False):
            raise ValueError(f"node {node.name!r}: batch norm in training mode cannot be ported")
        gamma, beta, mean, variance = (self._const(node, i) for i in range(1, 5))
        return batch_norm_affine(gamma, beta, mean, variance, float(node.attrs.get("epsilon", 1e-3)))

    def _layer(self, node: Node) -> tuple[nn.Module, int]:
        """The step computing ``node`` and the rank of its output."""
        op, args = node.op, _data_inputs(node)
        rank = self._rank.get(args[0], 0) if args else 0
        if op in CONV_OPS:
            _check_nhwc(node)
            depthwise = op == "DepthwiseConv2dNative"
            filt = self._const(node, 1)
            weight = conv_weight_from_tf(filt, depthwise)
            groups = filt.shape[2] if depthwise else 1
            return TFConv2d(weight, _nhwc_pair(node, "strides"), _nhwc_pair(node, "dilations"),
                            node.attrs.get("padding", ""), groups), 4
        if op in BATCH_NORM_OPS:
            return ChannelAffine(*self._batch_norm(node)), 4
        if op == "Relu":
            return nn.ReLU(), rank
        if op == "Relu6":
            return nn.Hardtanh(0.0, 6.0), rank
        if op == "Sigmoid":
            return nn.Sigmoid(), rank
        if op in ("Add", "AddV2"):
            if any(a in self._consts for a in args) or self._rank[args[0]] != self._rank[args[1]]:
                raise ValueError(f"node {node.name!r}: Add is supported for two computed tensors of one rank")
            return AddTensors(), rank
        if op == "AvgPool":
            _check_nhwc(node)
            if node.attrs.get("padding") != "VALID":
                raise ValueError(f"node {node.name!r}: AvgPool padding {node.attrs.get('padding')!r} is not "
                                 f"supported, only VALID")
            return AvgPoolValid(_nhwc_pair(node, "ksize"), _nhwc_pair(node, "strides")), 4
        if op == "Reshape":
            shape = self._const(node, 1)
            return ReshapeTF(shape.tolist()), len(shape)
        if op == "MatMul":
            weight = self._const(node, 1)
            if node.attrs.get("transpose_b", False):
                weight = weight.T
            return MatMulConst(weight, bool(node.attrs.get("transpose_a", False))), 2
        if op == "BiasAdd":
            _check_nhwc(node)
            return ChannelAffine(None, self._const(node, 1)), rank
        raise ValueError(f"node {node.name!r}: operation {op!r} is not supported")

    # --- running -----------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[int, torch.Tensor] = {0: x.permute(0, 3, 1, 2) if x.dim() == 4 else x}
        for step, (layer, inputs) in enumerate(zip(self.layers, self._inputs)):
            values[step + 1] = layer(*(values[s] for s in inputs))
            for s in self._release[step]:
                del values[s]
        out = values[self._output]
        return out.permute(0, 2, 3, 1) if self._output_rank == 4 else out

    def extra_repr(self) -> str:
        counts = Counter(op for _, op in self.steps)
        return f"{len(self.steps)} steps: " + ", ".join(f"{n} {op}" for op, n in sorted(counts.items()))

