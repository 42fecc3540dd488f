"""TensorFlow frozen ``GraphDef`` files (``.pb``) parsed by protobuf's runtime, without TensorFlow.

A frozen graph is one serialised ``tensorflow.GraphDef`` message: the
network's nodes with their weights stored inline as ``Const`` nodes.  The
``protobuf`` package parses it against the part of TensorFlow's message
definitions this module declares (:data:`SCHEMA`, field numbers from
``tensorflow/core/framework/*.proto``), and the nodes come back as plain
data (:class:`Node`: name, op, inputs, attributes; tensors as numpy
arrays), which :mod:`fiqa_bench.formats.graphdef_torch` turns into a PyTorch
module (used by :mod:`fiqa_bench.methods.lightqnet`).

Why the message definitions are declared here rather than imported
------------------------------------------------------------------
Parsing is protobuf's (``protobuf`` is already installed for ``onnx``, see
:mod:`fiqa_bench.formats.onnx_graph`); only the definitions are ours, because
no light, maintained package ships TensorFlow's.  Measured with pip on
Python 3.11, over what fiqa-bench installs anyway (numpy, pillow, protobuf,
onnx):

* ``tensorboard`` 2.21.0 ships them (``tensorboard/compat/proto``) but
  brings absl-py, grpcio, markdown, markupsafe, tensorboard-data-server and
  werkzeug: seven wheels of 20.0 MB, 54 MiB installed (tensorboard-data-server
  20 MiB, grpcio 19 MiB, tensorboard 12 MiB), 5.3 s to install from a local
  wheel cache: a web server and an RPC stack to read one file.
* ``tensorboardX`` 2.6.5 (an 88 kB wheel) carries a trimmed copy in
  ``tensorboardX.proto``, an internal module of a logging library, generated
  by protoc 22.3 (protobuf 4 for Python).  Protobuf supports code generated
  for major version V on runtimes V and V+1 only; fiqa-bench pins protobuf 7
  (``onnx`` 1.23 needs 6.31.1 or later), so that copy works today outside the
  guarantee.
* ``tensorflow-protobuf`` 2.11.0, a third party's copy, was last released
  in November 2022 (TensorFlow 2.11).

Declaring the messages costs no dependency and no generated code (so no
version coupling between generated code and runtime), and the declarations
cannot go stale: protobuf's rules forbid renumbering a field, or TensorFlow
could not read its own old graphs.  With ``tensorboardX``'s copy the three
LightQNet graphs parse to the same nodes, attributes and arrays, bit for bit.

Supported
---------
* ``GraphDef`` 1 ``node``; ``NodeDef`` 1 ``name``, 2 ``op``, 3 ``input``
  (``^x`` is a control input, ``x:1`` the second output of ``x``), 4
  ``device``, 5 ``attr`` (a map: entries of 1 ``key``, 2 ``value``).
* ``AttrValue`` (a oneof): 1 ``list``, 2 ``s``, 3 ``i``, 4 ``f``, 5 ``b``, 6
  ``type``, 7 ``shape``, 8 ``tensor``, 9 ``placeholder``; its ``ListValue``
  the plural 2-8.  Values become Python values: ``s`` -> ``str`` (UTF-8) or
  ``bytes`` when it is not text, ``i`` -> int, ``f`` -> float (the float32
  value, widened), ``b`` -> bool, ``type`` -> :class:`DType`, ``shape`` -> a
  tuple of ints (-1 = unknown) or None for an unknown rank, ``tensor`` ->
  numpy array, ``list`` -> a list of those; an empty value (e.g. a ``func``)
  -> None.
* ``TensorProto`` of the :class:`DType` types: 1 ``dtype``, 2
  ``tensor_shape`` (``TensorShapeProto``: 2 ``dim`` of 1 ``size``, 2
  ``name``; 3 ``unknown_rank``), 4 ``tensor_content`` (the raw little-endian
  array, row-major) or the typed list 5 ``float_val``, 6 ``double_val``, 7
  ``int_val`` (int32 and narrower types), 10 ``int64_val``, 11
  ``bool_val``; a list shorter than the shape is completed by repeating its
  last value (how TensorFlow stores a constant filled with one value).
* Everything else (``versions``, ``library``, other fields) is skipped.

Refused, as :class:`GraphDefError` (a ValueError; :func:`read_graphdef` names the file)
---------------------------------------------------------------------------------------
bytes that protobuf cannot parse as a ``GraphDef`` (including strings that are
not UTF-8), a node without a name or op, duplicate node names, a tensor of
another data type (strings, half, complex ...) or without a fully known
shape, and a ``tensor_content`` or value list that does not fit the shape.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

__all__ = ["DType", "GraphDefError", "NUMPY_DTYPE", "Node", "SCHEMA", "parse_graphdef", "read_graphdef"]


class GraphDefError(ValueError):
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


# --- the messages read (proto3, as TensorFlow's) ---------------------------------------------------

#: message -> its fields ``(name, number, type, repeated)``; a type is a protobuf scalar type or one
#: of these messages.  TensorFlow's nested ``Dim``, ``ListValue`` and map entry are top-level here
#: (the name of a message type is not on the wire; a map is, on the wire, a repeated key/value
#: message), and its ``DataType`` enum is read as the int32 it is on the wire.  The fields of
#: ``AttrValue`` form its oneof ``value``.
SCHEMA: dict[str, tuple[tuple[str, int, str, bool], ...]] = {
    "GraphDef": (("node", 1, "NodeDef", True),),
    "NodeDef": (("name", 1, "string", False), ("op", 2, "string", False), ("input", 3, "string", True),
                ("device", 4, "string", False), ("attr", 5, "AttrEntry", True)),
    "AttrEntry": (("key", 1, "string", False), ("value", 2, "AttrValue", False)),
    "AttrValue": (("list", 1, "ListValue", False), ("s", 2, "bytes", False), ("i", 3, "int64", False),
                  ("f", 4, "float", False), ("b", 5, "bool", False), ("type", 6, "int32", False),
                  ("shape", 7, "TensorShapeProto", False), ("tensor", 8, "TensorProto", False),
                  ("placeholder", 9, "string", False)),
    "ListValue": (("s", 2, "bytes", True), ("i", 3, "int64", True), ("f", 4, "float", True),
                  ("b", 5, "bool", True), ("type", 6, "int32", True), ("shape", 7, "TensorShapeProto", True),
                  ("tensor", 8, "TensorProto", True)),
    "TensorShapeProto": (("dim", 2, "Dim", True), ("unknown_rank", 3, "bool", False)),
    "Dim": (("size", 1, "int64", False), ("name", 2, "string", False)),
    "TensorProto": (("dtype", 1, "int32", False), ("tensor_shape", 2, "TensorShapeProto", False),
                    ("tensor_content", 4, "bytes", False), ("float_val", 5, "float", True),
                    ("double_val", 6, "double", True), ("int_val", 7, "int32", True),
                    ("int64_val", 10, "int64", True), ("bool_val", 11, "bool", True)),
}
_ONEOF = {"AttrValue": "value"}
_PACKAGE = "fiqa_bench.graphdef"


def _message_classes() -> dict[str, type[Message]]:
    """The messages of :data:`SCHEMA` as protobuf message classes, in a descriptor pool of their own."""
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="fiqa_bench/formats/graphdef.proto", package=_PACKAGE,
                                              syntax="proto3")
    for message, fields in SCHEMA.items():
        proto = file.message_type.add(name=message)
        if message in _ONEOF:
            proto.oneof_decl.add(name=_ONEOF[message])
        for name, number, kind, repeated in fields:
            f = proto.field.add(name=name, number=number,
                                label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if kind in SCHEMA:
                f.type, f.type_name = F.TYPE_MESSAGE, f".{_PACKAGE}.{kind}"
            else:
                f.type = F.Type.Value(f"TYPE_{kind.upper()}")
            if message in _ONEOF:
                f.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())
    return {m: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{m}")) for m in SCHEMA}


_GraphDef = _message_classes()["GraphDef"]


# --- messages -> plain data ------------------------------------------------------------------------

def _shape(shape: Message) -> tuple[int, ...] | None:
    """A ``TensorShapeProto``: the dimensions (-1 = unknown), or None when the rank is unknown."""
    return None if shape.unknown_rank else tuple(d.size for d in shape.dim)


def _dtype(value: int, where: str) -> DType:
    try:
        return DType(value)
    except ValueError:
        raise GraphDefError(f"{where}: data type {value} is not supported (known: "
                            f"{', '.join(d.name for d in DType)})") from None


def _tensor(tensor: Message) -> np.ndarray:
    """A ``TensorProto`` as a numpy array of its dtype and shape."""
    dtype = _dtype(tensor.dtype, "tensor")
    shape = _shape(tensor.tensor_shape)
    if shape is None or any(d < 0 for d in shape):
        raise GraphDefError(f"a constant tensor needs a fully known shape, got {shape}")
    np_dtype = NUMPY_DTYPE[dtype]
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        content = tensor.tensor_content
        if len(content) != count * np_dtype.itemsize:
            raise GraphDefError(f"tensor_content holds {len(content)} bytes, shape {shape} of {dtype.name} "
                                f"needs {count * np_dtype.itemsize}")
        return np.frombuffer(content, dtype=np_dtype).reshape(shape).astype(np_dtype.newbyteorder("="))
    values = [*tensor.float_val, *tensor.double_val, *tensor.int_val, *tensor.int64_val, *tensor.bool_val]
    if len(values) > count or (not values and count):
        raise GraphDefError(f"tensor of shape {shape} has {len(values)} listed values")
    values = values + values[-1:] * (count - len(values))
    return np.array(values, dtype=np_dtype.newbyteorder("=")).reshape(shape)


def _string(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _attr(attr: Message) -> Any:
    """An ``AttrValue`` as a Python value (see the module docstring); None when it is empty."""
    kind = attr.WhichOneof("value")
    if kind == "list":
        items = attr.list
        return [*map(_string, items.s), *items.i, *map(float, items.f), *map(bool, items.b),
                *(_dtype(t, "attribute list") for t in items.type), *map(_shape, items.shape),
                *map(_tensor, items.tensor)]
    if kind == "s":
        return _string(attr.s)
    if kind == "type":
        return _dtype(attr.type, "attribute")
    if kind == "shape":
        return _shape(attr.shape)
    if kind == "tensor":
        return _tensor(attr.tensor)
    return None if kind is None else getattr(attr, kind)  # i, f, b, placeholder: already Python values


def _node(node: Message) -> Node:
    """A ``NodeDef``."""
    if not node.name or not node.op:
        raise GraphDefError(f"a node without a name or op (name {node.name!r}, op {node.op!r})")
    attrs: dict[str, Any] = {}
    for entry in node.attr:
        try:
            attrs[entry.key] = _attr(entry.value)
        except GraphDefError as exc:
            raise GraphDefError(f"node {node.name!r}, attribute {entry.key!r}: {exc}") from None
    return Node(node.name, node.op, tuple(node.input), attrs)


def parse_graphdef(data: bytes) -> list[Node]:
    """The nodes of a serialised ``GraphDef``, in file order."""
    graph = _GraphDef()
    try:
        graph.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise GraphDefError(f"protobuf cannot parse it as a GraphDef ({exc})") from None
    nodes = [_node(n) for n in graph.node]
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
