"""A small reader of TensorFlow's frozen ``GraphDef`` protobufs, without TensorFlow or ``protobuf``.

A frozen graph (``.pb``) is one serialised ``tensorflow.GraphDef`` message:
the network's nodes with their weights stored inline as ``Const`` nodes.
This module decodes the protobuf wire format directly and returns the nodes
as plain data (:class:`Node`: name, op, inputs, attributes; tensors as numpy
arrays), which :mod:`fiqa_bench.formats.graphdef_torch` turns into a PyTorch module.

The wire format is decoded by :mod:`fiqa_bench.formats.protobuf_wire` (shared with
:mod:`fiqa_bench.formats.onnx_graph`); TensorFlow's protos use no groups (wire types
3 and 4), which are rejected.  Wire-format errors surface as
:class:`GraphDefError` from :func:`parse_graphdef`.

The messages and field numbers read (``tensorflow/core/framework/*.proto``)
------------------------------------------------------------------------------
* ``GraphDef``: 1 ``node`` (repeated ``NodeDef``); ``versions`` and
  ``library`` are skipped.
* ``NodeDef``: 1 ``name``, 2 ``op``, 3 ``input`` (repeated string; ``^x`` is
  a control input, ``x:1`` the second output of ``x``), 4 ``device``, 5
  ``attr`` (a map, i.e. repeated entries with 1 ``key`` and 2 ``value``).
* ``AttrValue`` (a oneof): 1 ``list``, 2 ``s`` (bytes), 3 ``i`` (int64), 4
  ``f`` (float), 5 ``b`` (bool), 6 ``type`` (``DataType``), 7 ``shape``, 8
  ``tensor``, 9 ``placeholder`` (string).
* ``AttrValue.ListValue``: 2 ``s``, 3 ``i``, 4 ``f``, 5 ``b``, 6 ``type``, 7
  ``shape``, 8 ``tensor``, all repeated.
* ``TensorShapeProto``: 2 ``dim`` (repeated ``Dim``: 1 ``size``, 2 ``name``),
  3 ``unknown_rank``.
* ``TensorProto``: 1 ``dtype``, 2 ``tensor_shape``, 4 ``tensor_content`` (the
  raw little-endian array, row-major), 5 ``float_val``, 6 ``double_val``, 7
  ``int_val`` (int32 and narrower types), 10 ``int64_val``, 11 ``bool_val``.
  When ``tensor_content`` is empty the typed list holds the values; a list
  shorter than the shape is completed by repeating its last value (how
  TensorFlow stores a constant filled with one value).

Attribute values become Python values: ``s`` -> ``str`` (UTF-8) or
``bytes`` when it is not text, ``i`` -> int, ``f`` -> float (the float32
value, widened), ``b`` -> bool, ``type`` -> :class:`DType`, ``shape`` -> a
tuple of ints (-1 = unknown) or None for an unknown rank, ``tensor`` ->
numpy array, ``list`` -> a list of those.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.formats.protobuf_wire import (
    FIXED32,
    WireFormatError,
    iter_fields,
    read_varint,
    repeated_scalars,
    signed64,
)
from fiqa_bench.formats.protobuf_wire import text as _text

__all__ = ["DType", "GraphDefError", "Node", "parse_attr", "parse_graphdef", "parse_node", "parse_shape",
           "parse_tensor", "read_graphdef", "read_varint", "signed64"]


class GraphDefError(WireFormatError):
    """The bytes are not a GraphDef this reader understands (the message says where and why)."""


class DType(enum.IntEnum):
    """The ``tensorflow.DataType`` values this reader can turn into numpy arrays."""

    DT_FLOAT = 1
    DT_DOUBLE = 2
    DT_INT32 = 3
    DT_UINT8 = 4
    DT_INT16 = 5
    DT_INT8 = 6
    DT_INT64 = 9
    DT_BOOL = 10


NUMPY_DTYPE = {DType.DT_FLOAT: np.dtype("<f4"), DType.DT_DOUBLE: np.dtype("<f8"), DType.DT_INT32: np.dtype("<i4"),
               DType.DT_UINT8: np.dtype("u1"), DType.DT_INT16: np.dtype("<i2"), DType.DT_INT8: np.dtype("i1"),
               DType.DT_INT64: np.dtype("<i8"), DType.DT_BOOL: np.dtype("?")}


@dataclass(frozen=True)
class Node:
    """One ``NodeDef``.

    Attributes:
        name: the node's name (its first output is the tensor ``name:0``).
        op: the operation, e.g. ``"Conv2D"``.
        inputs: input tensors as written in the graph (``"x"``, ``"x:1"``, ``"^x"``).
        attrs: attribute name -> Python value (see the module docstring).
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


# --- messages ------------------------------------------------------------------------------------

def parse_shape(buf: bytes) -> tuple[int, ...] | None:
    """A ``TensorShapeProto``: the dimensions (-1 = unknown), or None when the rank is unknown."""
    dims: list[int] = []
    unknown_rank = False
    for number, _, value in iter_fields(buf):
        if number == 2:
            size = 0
            for n, _, v in iter_fields(value):
                if n == 1:
                    size = signed64(v)
            dims.append(size)
        elif number == 3:
            unknown_rank = bool(value)
    return None if unknown_rank else tuple(dims)


def _dtype(value: int, where: str) -> DType:
    try:
        return DType(value)
    except ValueError:
        raise GraphDefError(f"{where}: data type {value} is not supported (known: "
                            f"{', '.join(d.name for d in DType)})") from None


def parse_tensor(buf: bytes) -> np.ndarray:
    """A ``TensorProto`` as a numpy array of its dtype and shape."""
    dtype, shape, content = None, (), b""
    values: list = []
    for number, wire, value in iter_fields(buf):
        if number == 1:
            dtype = _dtype(value, "tensor")
        elif number == 2:
            shape = parse_shape(value)
            if shape is None or any(d < 0 for d in shape):
                raise GraphDefError(f"a constant tensor needs a fully known shape, got {shape}")
        elif number == 4:
            content = bytes(value)
        elif number == 5:
            values += repeated_scalars(wire, value, "f")
        elif number == 6:
            values += repeated_scalars(wire, value, "d")
        elif number in (7, 10):
            values += [signed64(v) for v in repeated_scalars(wire, value, "varint")]
        elif number == 11:
            values += [bool(v) for v in repeated_scalars(wire, value, "varint")]
    if dtype is None:
        raise GraphDefError("tensor without a dtype")
    np_dtype = NUMPY_DTYPE[dtype]
    count = int(np.prod(shape, dtype=np.int64))
    if content:
        if len(content) != count * np_dtype.itemsize:
            raise GraphDefError(f"tensor_content holds {len(content)} bytes, shape {shape} of {dtype.name} "
                                f"needs {count * np_dtype.itemsize}")
        return np.frombuffer(content, dtype=np_dtype).reshape(shape).astype(np_dtype.newbyteorder("="))
    if len(values) > count or (not values and count):
        raise GraphDefError(f"tensor of shape {shape} has {len(values)} listed values")
    values = values + values[-1:] * (count - len(values))
    return np.array(values, dtype=np_dtype.newbyteorder("=")).reshape(shape)


def _attr_list(buf: bytes) -> list:
    out: list = []
    for number, wire, value in iter_fields(buf):
        if number == 2:
            out.append(_string_attr(value))
        elif number == 3:
            out += [signed64(v) for v in repeated_scalars(wire, value, "varint")]
        elif number == 4:
            out += [float(v) for v in repeated_scalars(wire, value, "f")]
        elif number == 5:
            out += [bool(v) for v in repeated_scalars(wire, value, "varint")]
        elif number == 6:
            out += [_dtype(v, "attribute list") for v in repeated_scalars(wire, value, "varint")]
        elif number == 7:
            out.append(parse_shape(value))
        elif number == 8:
            out.append(parse_tensor(value))
    return out


def _string_attr(value: bytes) -> str | bytes:
    try:
        return _text(value)
    except UnicodeDecodeError:
        return bytes(value)


def parse_attr(buf: bytes) -> Any:
    """An ``AttrValue`` as a Python value (see the module docstring); None when it is empty."""
    result: Any = None
    for number, wire, value in iter_fields(buf):
        if number == 1:
            result = _attr_list(value)
        elif number == 2:
            result = _string_attr(value)
        elif number == 3:
            result = signed64(value)
        elif number == 4:
            if wire != FIXED32:
                raise GraphDefError(f"float attribute with wire type {wire}")
            result = struct.unpack("<f", value)[0]
        elif number == 5:
            result = bool(value)
        elif number == 6:
            result = _dtype(value, "attribute")
        elif number == 7:
            result = parse_shape(value)
        elif number == 8:
            result = parse_tensor(value)
        elif number == 9:
            result = _text(value)
    return result


def parse_node(buf: bytes) -> Node:
    """A ``NodeDef``."""
    name, op, inputs, attrs = "", "", [], {}
    for number, _, value in iter_fields(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:
            op = _text(value)
        elif number == 3:
            inputs.append(_text(value))
        elif number == 5:
            key, attr = "", None
            for n, _, v in iter_fields(value):
                if n == 1:
                    key = _text(v)
                elif n == 2:
                    attr = v
            try:
                attrs[key] = parse_attr(attr) if attr is not None else None
            except WireFormatError as exc:
                raise GraphDefError(f"node {name!r}, attribute {key!r}: {exc}") from None
    if not name or not op:
        raise GraphDefError(f"a node without a name or op (name {name!r}, op {op!r})")
    return Node(name, op, tuple(inputs), attrs)


def parse_graphdef(data: bytes) -> list[Node]:
    """The nodes of a serialised ``GraphDef``, in file order."""
    try:
        nodes = [parse_node(value) for number, _, value in iter_fields(bytes(data)) if number == 1]
    except GraphDefError:
        raise
    except WireFormatError as exc:  # a primitive's error, as this reader's
        raise GraphDefError(str(exc)) from None
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise GraphDefError("the graph has duplicate node names")
    return nodes


def read_graphdef(path: str | Path) -> list[Node]:
    """The nodes of the frozen graph file ``path``; errors name the file."""
    try:
        return parse_graphdef(Path(path).read_bytes())
    except GraphDefError as exc:
        raise GraphDefError(f"{path}: not a GraphDef this reader understands: {exc}") from None
