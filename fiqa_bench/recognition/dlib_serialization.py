"""A pure-Python reader for dlib's ``.dat`` serialization of DNN networks.

This module reads the byte format dlib (``dlib/serialize.h`` and the DNN
headers) uses to save a network such as ``dlib_face_recognition_resnet_model_v1.dat``
and returns its layers, in forward order, as plain data (type, hyper-parameters,
float32 numpy arrays).  It does not depend on dlib.

Primitive encodings
-------------------
* **Integers** are packed: one control byte, then ``size`` little-endian
  magnitude bytes.  The control byte's low 4 bits are ``size`` (1..8, never 0:
  the value 0 is written as ``01 00``); for signed types bit ``0x80`` is the
  sign (the magnitude is stored, not two's complement), so -28 is ``81 1c``.
  For unsigned types a set ``0x80`` bit makes the size invalid.  The reader
  enforces the C++ type's width (``int`` 4, ``long``/``size_t`` 8, ``int16`` 2).
* **bool** is the ASCII byte ``'1'`` or ``'0'`` (not ``01``/``00``).
* **Strings** (and C string literals, without their NUL) are a packed
  unsigned length followed by the raw bytes.  Layers identify themselves with
  such a string, e.g. ``"con_4"``.
* **Scalar floats/doubles** are a ``float_details``: a signed 64-bit mantissa
  and a signed 16-bit exponent, value ``mantissa * 2**exponent``.  Exponent
  32000/32001/32002 mean +inf/-inf/NaN.  Trailing zero bytes are shifted off
  the mantissa, so 0.0 is ``(0, 11)`` for a double and 1.0 is ``(16, -4)``.
  NOTE: the prose comment in ``serialize.h`` says "first the exponent and then
  the mantissa", but the code (and this file's bytes) put the **mantissa
  first**.  Bytes whose ``0x70`` bits are set would mean dlib's old ASCII float
  format, which this reader rejects.
* **Tensors** (``resizable_tensor``) are: int version (must be 2), four packed
  ``long long`` dims (num_samples, k, nr, nc), then the data as raw
  little-endian IEEE float32 -- *not* as ``float_details``.  So the ~5.8M
  weights of the face ResNet are read with one ``numpy.frombuffer`` per tensor
  and parsing takes milliseconds, not a Python loop per float.
* **alias_tensor** (a shape into a parameter tensor) is: int version 1 and the
  four dims, no data.

Network layout
--------------
A network type is nested: ``add_loss_layer<LOSS, add_layer<L_n, ... add_layer<L_1, INPUT>>>``.
Serialization writes each wrapper's version *before* recursing into its
subnetwork and the layer's own details *after* it, so the file is:

1. ``add_loss_layer``: version 1, the loss details (``"loss_metric_2"``,
   margin, distance threshold as floats).
2. The wrapper versions, outermost first: ``add_layer`` writes 2 (3 in recent
   dlib for the layer directly above the input), ``add_tag_layer`` and
   ``add_skip_layer`` write 1 and **nothing else** -- in particular the tag
   number (tag1, tag2, skip1, add_prev1 ...) is part of the C++ type and is
   not stored.  A tag and a skip are therefore indistinguishable in the file;
   this reader reports both as ``"tag_or_skip"`` and the architecture
   definition (see :mod:`fiqa_bench.recognition.dlib_resnet`) gives them
   meaning.  An ``add_layer`` version 1 would also be indistinguishable from a
   tag, so only add_layer versions 2 and 3 are accepted.
3. The input layer (``"input_rgb_image_sized"``, the three channel means as
   floats, then nr and nc).
4. For each ``add_layer`` from the bottom up (i.e. forward order): the layer
   details, three bools (setup called, gradient stale, output disabled), and
   three tensors (x_grad, cached_output, params_grad -- empty in a cleaned net)
   plus, for version 3 above the input, an int sample-expansion factor.

Layer details understood here: ``con_4/5/6`` (convolution; params = filters
``(n, k, nr, nc)`` followed by ``n`` biases), ``affine_``/``affine_2`` (params
= gamma then beta, per channel in CONV mode), ``bn_con2``/``bn_fc2`` (converted
to an affine exactly as dlib's ``affine_(bn_)`` does), ``relu_``/``relu_2``,
``max_pool_2``/``avg_pool_2`` (size 0 = whole input), ``add_prev_`` (no data)
and ``fc_2``/``fc_3`` (params = a row-major ``(num_inputs, num_outputs)``
weight matrix, then the bias when ``bias_mode`` is 0 = FC_HAS_BIAS).

Facts checked against ``dlib_face_recognition_resnet_model_v1.dat``
(22,466,066 bytes): the loss is ``loss_metric_2`` with margin 0.04 and
distance threshold 0.6; convolutions are ``con_4`` (biases always present);
normalisation layers are stored already folded as ``affine_`` (no
``disabled`` flag); relus are ``relu_``; the fc is ``fc_2`` with
``bias_mode=1`` (no bias); the input means are 122.782, 117.001, 104.298; all
wrapper tensors are empty; the add_layer directly above the input is written
with version 3 (so it carries sample_expansion_factor = 1) although every
other add_layer is version 2; there are 108 add_layers and 22 tag/skip
markers (130 layers), 5,614,592 float32 parameters (the 29 conv biases are
stored even though each conv is followed by an affine), and the stream ends
exactly at the end of the file.  Reading and parsing the whole file takes
about 30 ms (most of it the file read and the array copies).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np


#: float_details exponents with special meaning.
_EXP_INF = 32000
_EXP_NINF = 32001
_EXP_NAN = 32002

#: Layer kinds in a :class:`DlibLayer`.
TAG_OR_SKIP = "tag_or_skip"



class DlibFormatError(ValueError):
    """The bytes do not follow dlib's serialization format (names source and offset)."""


class DlibReader:
    """Sequential reader of dlib's serialization primitives over an in-memory buffer.

    Args:
        data: the serialized bytes.
        source: a name for messages (usually the file path).
    """

    def __init__(self, data: bytes | bytearray | memoryview, source: str = "<bytes>") -> None:
        self._data = memoryview(data).cast("B")
        self.source = source
        self.pos = 0

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self._data) - self.pos

    def error(self, message: str, offset: int | None = None) -> DlibFormatError:
        """A :class:`DlibFormatError` naming the source and byte offset."""
        at = self.pos if offset is None else offset
        return DlibFormatError(f"{self.source}: at byte offset {at}: {message}")

    def _take(self, n: int, what: str) -> memoryview:
        if n < 0:
            raise self.error(f"negative length {n} for {what}")
        if n > self.remaining:
            raise self.error(
                f"truncated stream: {what} needs {n} bytes but only {self.remaining} remain"
            )
        view = self._data[self.pos : self.pos + n]
        self.pos += n
        return view

    def read_raw(self, n: int, what: str = "raw bytes") -> bytes:
        """``n`` raw bytes."""
        return bytes(self._take(n, what))

    def read_int(self, nbytes: int = 8, signed: bool = True, what: str = "integer") -> int:
        """A packed integer of a C++ type ``nbytes`` wide (signed or unsigned)."""
        start = self.pos
        control = self._take(1, what)[0]
        if signed:
            size = control & 0x0F
            negative = bool(control & 0x80)
        else:
            size = control & 0x8F
            negative = False
        if size == 0 or size > min(nbytes, 8):
            raise self.error(
                f"invalid control byte 0x{control:02x} for a {nbytes}-byte "
                f"{'signed' if signed else 'unsigned'} {what}",
                start,
            )
        magnitude = int.from_bytes(self._take(size, what), "little")
        return -magnitude if negative else magnitude

    def read_uint(self, nbytes: int = 8, what: str = "unsigned integer") -> int:
        """A packed unsigned integer (``unsigned long``/``size_t`` by default)."""
        return self.read_int(nbytes, signed=False, what=what)

    def read_bool(self, what: str = "bool") -> bool:
        """A bool, stored as ASCII ``'1'`` or ``'0'``."""
        start = self.pos
        ch = self._take(1, what)[0]
        if ch == 0x31:
            return True
        if ch == 0x30:
            return False
        raise self.error(f"invalid {what} byte 0x{ch:02x} (expected ASCII '0' or '1')", start)

    def read_float(self, float32: bool = False, what: str = "float") -> float:
        """A float/double stored as ``float_details`` (mantissa, then exponent).

        Args:
            float32: convert like dlib does into a C++ ``float`` (mantissa rounded
                to float32, then scaled in float32); otherwise into a double.
        """
        start = self.pos
        if self.remaining and self._data[self.pos] & 0x70:
            raise self.error(f"{what} uses dlib's old ASCII float format, which is not supported")
        mantissa = self.read_int(8, True, f"{what} mantissa")
        exponent = self.read_int(2, True, f"{what} exponent")
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent > _EXP_NINF:
            if exponent == _EXP_NAN:
                return math.nan
            raise self.error(f"invalid {what} exponent {exponent}", start)
        if float32:
            with np.errstate(over="ignore", under="ignore"):
                # C++: ldexp((float)mantissa, exponent) -- int64 rounded straight to float32.
                m32 = np.array(mantissa, dtype=np.int64).astype(np.float32)
                return float(np.ldexp(m32, np.int32(exponent)).astype(np.float32))
        return math.ldexp(float(mantissa), exponent)

    def read_string(self, what: str = "string", max_len: int = 1 << 20) -> str:
        """A string: packed unsigned length, then the bytes."""
        start = self.pos
        n = self.read_uint(8, f"{what} length")
        if n > max_len:
            raise self.error(f"implausible {what} length {n}", start)
        raw = self._take(n, what)
        try:
            return bytes(raw).decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.error(f"{what} is not ASCII: {bytes(raw)[:40]!r}", start) from exc

    def peek_string(self) -> str | None:
        """The string at the current position if one parses there, else None (no consumption)."""
        start = self.pos
        try:
            return self.read_string(max_len=256)
        except DlibFormatError:
            return None
        finally:
            self.pos = start

    def _read_dims(self, what: str) -> tuple[int, int, int, int]:
        dims = tuple(self.read_int(8, True, f"{what} dim") for _ in range(4))
        if any(d < 0 for d in dims):
            raise self.error(f"negative {what} dims {dims}")
        return dims  # type: ignore[return-value]

    def read_tensor(self, what: str = "tensor") -> np.ndarray:
        """A ``resizable_tensor``: version 2, 4 dims, raw little-endian float32 data.

        Returns:
            a float32 array of shape ``(num_samples, k, nr, nc)`` (a copy).
        """
        start = self.pos
        version = self.read_int(4, True, f"{what} version")
        if version != 2:
            raise self.error(f"unexpected {what} version {version} (expected 2)", start)
        dims = self._read_dims(what)
        count = dims[0] * dims[1] * dims[2] * dims[3]
        raw = self._take(4 * count, f"{what} data ({count} float32)")
        return np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32).reshape(dims)

    def read_alias_tensor(self, what: str = "alias_tensor") -> tuple[int, int, int, int]:
        """An ``alias_tensor`` (a shape only): version 1 and 4 dims."""
        start = self.pos
        version = self.read_int(4, True, f"{what} version")
        if version != 1:
            raise self.error(f"unexpected {what} version {version} (expected 1)", start)
        return self._read_dims(what)


@dataclass
class DlibLayer:
    """One layer of a parsed network.

    Attributes:
        kind: ``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``,
            ``"add_prev"``, ``"fc"``, ``"tag_or_skip"``, or for the ends
            ``"input_rgb_image_sized"`` / ``"loss_metric"``.
        version: the type string as stored (e.g. ``"con_4"``), or
            ``"add_tag_layer|add_skip_layer"`` for markers.
        params: hyper-parameters (ints, floats, bools, strings).
        arrays: float32 parameter arrays (``weight``, ``bias``, ``gamma``, ``beta``).
        offset: byte offset where this layer's stored details start.
    """

    kind: str
    version: str
    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    offset: int = 0

    def describe(self) -> str:
        """One line: kind, hyper-parameters and array shapes."""
        hp = ", ".join(f"{k}={v}" for k, v in self.params.items())
        arr = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.arrays.items())
        return f"{self.kind:<22} {self.version:<10} {hp}" + (f" | {arr}" if arr else "")


@dataclass
class DlibNetwork:
    """A parsed dlib network.

    Attributes:
        source: where it was read from.
        loss: the loss layer.
        input: the input layer (channel means, size).
        layers: every layer between input and loss in forward order, with
            tag/skip markers at their positions.
        wrapper_versions: the add_layer/tag/skip versions, in forward order.
        num_bytes: size of the stream.
    """

    source: str
    loss: DlibLayer
    input: DlibLayer
    layers: list[DlibLayer]
    wrapper_versions: list[int]
    num_bytes: int

    def summary(self) -> str:
        """The layer sequence, one per line (input first, loss last)."""
        lines = [f"[in ] {self.input.describe()}"]
        lines += [f"[{i:3d}] {layer.describe()}" for i, layer in enumerate(self.layers)]
        lines.append(f"[out] {self.loss.describe()}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------
# Layer detail parsers (keyed by the stored type string).

def _parse_con(r: DlibReader, version: str, offset: int) -> DlibLayer:
    params = r.read_tensor("con params")
    num_filters = r.read_int(8, True, "con num_filters")
    nr = r.read_int(8, True, "con nr")
    nc = r.read_int(8, True, "con nc")
    stride_y = r.read_int(4, True, "con stride_y")
    stride_x = r.read_int(4, True, "con stride_x")
    padding_y = r.read_int(4, True, "con padding_y")
    padding_x = r.read_int(4, True, "con padding_x")
    filters = r.read_alias_tensor("con filters")
    biases = r.read_alias_tensor("con biases")
    lr = r.read_float(what="con learning_rate_multiplier")
    wd = r.read_float(what="con weight_decay_multiplier")
    r.read_float(what="con bias_learning_rate_multiplier")
    r.read_float(what="con bias_weight_decay_multiplier")
    use_bias = r.read_bool("con use_bias") if version in ("con_5", "con_6") else True
    use_relu = r.read_bool("con use_relu") if version == "con_6" else False
    n_w = int(np.prod(filters))
    n_b = int(np.prod(biases)) if use_bias else 0
    if filters[0] != num_filters or (use_bias and n_b != num_filters):
        raise r.error(f"con layer at offset {offset}: filters {filters} / biases {biases} "
                      f"disagree with num_filters={num_filters}")
    if params.size != n_w + n_b:
        raise r.error(f"con layer at offset {offset}: params has {params.size} values, "
                      f"filters+biases need {n_w + n_b}")
    flat = params.reshape(-1)
    arrays = {"weight": flat[:n_w].reshape(filters).copy()}
    if use_bias:
        arrays["bias"] = flat[n_w:].copy()
    return DlibLayer("con", version, {
        "num_filters": num_filters, "nr": nr, "nc": nc, "stride_y": stride_y,
        "stride_x": stride_x, "padding_y": padding_y, "padding_x": padding_x,
        "use_bias": use_bias, "use_relu": use_relu, "lr_mult": lr, "wd_mult": wd,
    }, arrays, offset)


def _parse_affine(r: DlibReader, version: str, offset: int) -> DlibLayer:
    params = r.read_tensor("affine params")
    gamma = r.read_alias_tensor("affine gamma")
    beta = r.read_alias_tensor("affine beta")
    mode = r.read_int(4, True, "affine mode")
    disabled = r.read_bool("affine disabled") if version == "affine_2" else False
    n_g, n_b = int(np.prod(gamma)), int(np.prod(beta))
    if params.size != n_g + n_b:
        raise r.error(f"affine layer at offset {offset}: params has {params.size} values, "
                      f"gamma+beta need {n_g + n_b}")
    if mode not in (0, 1):
        raise r.error(f"affine layer at offset {offset}: invalid mode {mode}")
    flat = params.reshape(-1)
    return DlibLayer("affine", version, {"mode": "conv" if mode == 0 else "fc", "disabled": disabled},
                     {"gamma": flat[:n_g].reshape(gamma).copy(),
                      "beta": flat[n_g:].reshape(beta).copy()}, offset)


def _parse_bn(r: DlibReader, version: str, offset: int) -> DlibLayer:
    params = r.read_tensor("bn params")
    gamma = r.read_alias_tensor("bn gamma")
    beta = r.read_alias_tensor("bn beta")
    for what in ("means", "invstds"):
        r.read_tensor(f"bn {what}")
    running_means = r.read_tensor("bn running_means").reshape(-1)
    running_vars = r.read_tensor("bn running_variances").reshape(-1)
    r.read_int(8, False, "bn num_updates")
    r.read_int(8, False, "bn running_stats_window_size")
    for what in ("learning_rate_multiplier", "weight_decay_multiplier",
                 "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
        r.read_float(what=f"bn {what}")
    eps = r.read_float(what="bn eps")
    n_g = int(np.prod(gamma))
    flat = params.reshape(-1)
    if params.size != n_g + int(np.prod(beta)) or running_means.size != n_g or running_vars.size != n_g:
        raise r.error(f"bn layer at offset {offset}: inconsistent parameter sizes")
    # As dlib's affine_(const bn_&): all float32 arithmetic.
    g = flat[:n_g] / np.sqrt(running_vars + np.float32(eps))
    b = flat[n_g:] - g * running_means
    return DlibLayer("affine", version, {"mode": "conv" if version == "bn_con2" else "fc",
                                         "disabled": False, "from_bn_eps": eps},
                     {"gamma": g.astype(np.float32).reshape(gamma),
                      "beta": b.astype(np.float32).reshape(beta)}, offset)


def _parse_relu(r: DlibReader, version: str, offset: int) -> DlibLayer:
    disabled = r.read_bool("relu disabled") if version == "relu_2" else False
    return DlibLayer("relu", version, {"disabled": disabled}, {}, offset)


def _parse_pool(r: DlibReader, version: str, offset: int) -> DlibLayer:
    kind = "max_pool" if version.startswith("max") else "avg_pool"
    nr = r.read_int(8, True, f"{kind} nr")
    nc = r.read_int(8, True, f"{kind} nc")
    stride_y = r.read_int(4, True, f"{kind} stride_y")
    stride_x = r.read_int(4, True, f"{kind} stride_x")
    padding_y = r.read_int(4, True, f"{kind} padding_y")
    padding_x = r.read_int(4, True, f"{kind} padding_x")
    return DlibLayer(kind, version, {"nr": nr, "nc": nc, "stride_y": stride_y, "stride_x": stride_x,
                                     "padding_y": padding_y, "padding_x": padding_x}, {}, offset)


def _parse_add_prev(r: DlibReader, version: str, offset: int) -> DlibLayer:
    return DlibLayer("add_prev", version, {}, {}, offset)


def _parse_fc(r: DlibReader, version: str, offset: int) -> DlibLayer:
    num_outputs = r.read_uint(8, "fc num_outputs")
    num_inputs = r.read_uint(8, "fc num_inputs")
    params = r.read_tensor("fc params")
    weights = r.read_alias_tensor("fc weights")
    biases = r.read_alias_tensor("fc biases")
    bias_mode = r.read_int(4, True, "fc bias_mode")
    for what in ("learning_rate_multiplier", "weight_decay_multiplier",
                 "bias_learning_rate_multiplier", "bias_weight_decay_multiplier"):
        r.read_float(what=f"fc {what}")
    use_bias = r.read_bool("fc use_bias") if version == "fc_3" else True
    has_bias = bias_mode == 0 and use_bias
    n_w = int(np.prod(weights))
    n_b = int(np.prod(biases)) if has_bias else 0
    if weights[:2] != (num_inputs, num_outputs) or params.size != n_w + n_b:
        raise r.error(f"fc layer at offset {offset}: params {params.shape}, weights {weights}, "
                      f"biases {biases} disagree with {num_inputs} inputs / {num_outputs} outputs")
    flat = params.reshape(-1)
    arrays = {"weight": flat[:n_w].reshape(num_inputs, num_outputs).copy()}
    if has_bias:
        arrays["bias"] = flat[n_w:].copy()
    return DlibLayer("fc", version, {"num_outputs": num_outputs, "num_inputs": num_inputs,
                                     "bias_mode": bias_mode, "has_bias": has_bias}, arrays, offset)


_LAYER_PARSERS: dict[str, Callable[[DlibReader, str, int], DlibLayer]] = {
    "con_4": _parse_con, "con_5": _parse_con, "con_6": _parse_con,
    "affine_": _parse_affine, "affine_2": _parse_affine,
    "bn_con2": _parse_bn, "bn_fc2": _parse_bn,
    "relu_": _parse_relu, "relu_2": _parse_relu,
    "max_pool_2": _parse_pool, "avg_pool_2": _parse_pool,
    "add_prev_": _parse_add_prev,
    "fc_2": _parse_fc, "fc_3": _parse_fc,
}


def _parse_loss(r: DlibReader) -> DlibLayer:
    offset = r.pos
    version = r.read_string("loss type")
    if version == "loss_metric_":
        return DlibLayer("loss_metric", version, {"margin": 0.1, "dist_thresh": 0.75}, {}, offset)
    if version == "loss_metric_2":
        margin = r.read_float(True, "loss margin")
        thresh = r.read_float(True, "loss dist_thresh")
        return DlibLayer("loss_metric", version, {"margin": margin, "dist_thresh": thresh}, {}, offset)
    raise r.error(f"unsupported loss layer type {version!r}", offset)


def _parse_input(r: DlibReader) -> DlibLayer:
    offset = r.pos
    version = r.read_string("input type")
    if version not in ("input_rgb_image_sized", "input_rgb_image"):
        raise r.error(f"unsupported input layer type {version!r}", offset)
    means = [r.read_float(True, f"input avg_{c}") for c in ("red", "green", "blue")]
    params: dict[str, Any] = {"avg_red": means[0], "avg_green": means[1], "avg_blue": means[2]}
    if version == "input_rgb_image_sized":
        params["nr"] = r.read_uint(8, "input nr")
        params["nc"] = r.read_uint(8, "input nc")
    return DlibLayer("input_rgb_image_sized" if "sized" in version else "input_rgb_image",
                     version, params, {}, offset)


def parse_dlib_network(data: bytes | bytearray | memoryview, source: str = "<bytes>") -> DlibNetwork:
    """Parse a serialized ``add_loss_layer<...>`` network (see the module docstring).

    Raises:
        DlibFormatError (a ValueError): on any deviation from the format, naming
            ``source`` and the byte offset; also when bytes remain after the network.
    """
    r = DlibReader(data, source)
    loss_version = r.read_int(4, True, "add_loss_layer version")
    if loss_version != 1:
        raise r.error(f"unexpected add_loss_layer version {loss_version} (expected 1)", 0)
    loss = _parse_loss(r)

    # Wrapper versions, outermost first, until the input layer's type string.
    versions: list[int] = []
    while True:
        name = r.peek_string()
        if name is not None and name.startswith("input"):
            break
        start = r.pos
        v = r.read_int(4, True, "layer wrapper version")
        if v not in (1, 2, 3):
            raise r.error(f"unexpected layer wrapper version {v} "
                          "(add_layer is 2 or 3, add_tag_layer/add_skip_layer 1)", start)
        versions.append(v)
    if not versions:
        raise r.error("no layers between the loss and the input layer")
    if versions[-1] == 1:
        raise r.error("a tag layer directly on the input layer is not supported")
    if 3 in versions[:-1]:
        raise r.error("add_layer version 3 is only valid directly above the input layer")
    inp = _parse_input(r)

    layers: list[DlibLayer] = []
    forward_versions = versions[::-1]
    for i, v in enumerate(forward_versions):
        if v == 1:
            layers.append(DlibLayer(TAG_OR_SKIP, "add_tag_layer|add_skip_layer", {}, {}, r.pos))
            continue
        offset = r.pos
        kind = r.read_string("layer type")
        parser = _LAYER_PARSERS.get(kind)
        if parser is None:
            raise r.error(f"unsupported layer type {kind!r} (layer {i} in forward order)", offset)
        layers.append(parser(r, kind, offset))
        for what in ("this_layer_setup_called", "gradient_input_is_stale",
                     "get_output_and_gradient_input_disabled"):
            r.read_bool(f"add_layer {what}")
        for what in ("x_grad", "cached_output", "params_grad"):
            r.read_tensor(f"add_layer {what}")
        if i == 0 and v == 3:
            r.read_int(8, True, "add_layer sample_expansion_factor")
    if r.remaining:
        raise r.error(f"{r.remaining} bytes remain after the network")
    return DlibNetwork(source, loss, inp, layers, forward_versions, len(r._data))


def load_dlib_resnet_weights(path: str | os.PathLike[str]) -> DlibNetwork:
    """Read and parse a dlib network ``.dat`` file (e.g. the face-recognition ResNet).

    Raises:
        FileNotFoundError: the file does not exist.
        DlibFormatError (a ValueError): the bytes are not a network this reader understands.
    """
    p = Path(path)
    return parse_dlib_network(p.read_bytes(), str(p))


__all__ = [
    "DlibFormatError", "DlibLayer", "DlibNetwork", "DlibReader",
    "TAG_OR_SKIP", "load_dlib_resnet_weights",
    "parse_dlib_network",
]
