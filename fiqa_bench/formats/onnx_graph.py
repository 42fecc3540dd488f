"""ONNX models (``.onnx``) read with the official ``onnx`` package and returned as plain data.

An ONNX file is one serialised ``onnx.ModelProto`` message: a header
(IR version, operator-set imports, producer) and a ``GraphProto`` holding the
nodes in topological order and the weights as *initializers* (named
tensors).  ``onnx`` parses it (:func:`onnx.load_model_from_string`, protobuf's
runtime) and converts its tensors (:func:`onnx.numpy_helper.to_array`) and
attributes (:func:`onnx.helper.get_attribute_value`); this module only turns
the result into frozen dataclasses: :class:`OnnxModel`, :class:`OnnxGraph`
(nodes, initializers as numpy arrays, declared inputs and outputs as
:class:`ValueInfo`) and :class:`OnnxNode` (op type, input and output names,
attributes as Python values).  Those are what the ports check node by node
against their architecture (e.g. :mod:`fiqa_bench.recognition.mobilefacenet`)
and what their tests edit (``dataclasses.replace``), free of protobuf's
accessors.  It reads; it does not run anything (the networks ported from ONNX
files are explicit PyTorch modules).

Supported
---------
* Tensors of every data type ``to_array`` converts (float32/64, float16,
  the integer types, bool, string; bfloat16, float8 and int4 through
  ``ml_dtypes``), stored as ``raw_data`` or as the typed value list; each
  array is a native-byte-order copy of the file's values, of its shape.
* Attributes: FLOAT -> float (the float32 value, widened), INT -> int,
  STRING -> ``str`` (UTF-8) or ``bytes`` when it is not text, TENSOR -> numpy
  array, GRAPH -> :class:`OnnxGraph`, and the plural types -> lists of those.
* Declared inputs, outputs and intermediates of tensor type, with their
  element type and shape (an int, a symbolic name, or None per dimension).

Refused, as :class:`OnnxError` (a ValueError; :func:`read_onnx` names the file)
-------------------------------------------------------------------------------
* bytes that protobuf cannot parse as a ``ModelProto``, or a model without a graph;
* tensors whose data lies in an external file (the ports check one file's
  sha256; nothing is read beside it), of an unknown or UNDEFINED data type,
  or whose values do not fill their shape;
* sparse initializers and attributes of type SPARSE_TENSOR(S) or
  TYPE_PROTO(S); an attribute without a type (IR version 1 files);
* initializers without a name or with the same name twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, external_data_helper, helper, numpy_helper


class OnnxError(ValueError):
    """The bytes are not an ONNX model this reader understands (the message says where and why)."""


@dataclass(frozen=True)
class OnnxNode:
    """One ``NodeProto``.

    Attributes:
        name: the node's name (may be empty: ONNX does not require one).
        op_type: the operator, e.g. ``"Conv"``.
        inputs: names of the tensors it reads (``""`` for an omitted optional input).
        outputs: names of the tensors it writes.
        attrs: attribute name -> Python value (see the module docstring).
        domain: the operator set's domain (``""`` is the default ``ai.onnx``).
    """

    name: str
    op_type: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""


@dataclass(frozen=True)
class ValueInfo:
    """A declared graph input, output or intermediate (``ValueInfoProto`` of a tensor type).

    Attributes:
        name: the tensor's name.
        elem_type: its ``TensorProto.DataType`` (0 when not declared).
        shape: one entry per dimension (an int, a symbolic name, or None when
            neither is given), or None when the shape is not declared.
    """

    name: str
    elem_type: int = 0
    shape: tuple[int | str | None, ...] | None = None


@dataclass(frozen=True)
class OnnxGraph:
    """One ``GraphProto``.

    Attributes:
        name: the graph's name.
        nodes: the nodes, in file (topological) order.
        initializers: weight name -> array, in file order.
        inputs: declared inputs; before IR version 4 these also list the initializers.
        outputs: declared outputs.
        value_info: declared intermediate tensors (often empty).
    """

    name: str
    nodes: tuple[OnnxNode, ...]
    initializers: dict[str, np.ndarray]
    inputs: tuple[ValueInfo, ...] = ()
    outputs: tuple[ValueInfo, ...] = ()
    value_info: tuple[ValueInfo, ...] = ()

    @property
    def data_inputs(self) -> tuple[ValueInfo, ...]:
        """The declared inputs that are not initializers: what a caller feeds."""
        return tuple(v for v in self.inputs if v.name not in self.initializers)


@dataclass(frozen=True)
class OnnxModel:
    """One ``ModelProto``: the graph and its header.

    Attributes:
        graph: the main graph.
        ir_version: the ONNX IR version the file was written with.
        opset_imports: operator-set domain (``""`` = ``ai.onnx``) -> version.
        producer_name: e.g. ``"pytorch"``.
        producer_version: e.g. ``"1.10"``.
    """

    graph: OnnxGraph
    ir_version: int = 0
    opset_imports: dict[str, int] = field(default_factory=dict)
    producer_name: str = ""
    producer_version: str = ""

    @property
    def opset(self) -> int:
        """The version of the default operator set (``ai.onnx``), 0 when not imported."""
        return self.opset_imports.get("", self.opset_imports.get("ai.onnx", 0))


# --- messages -> plain data ------------------------------------------------------------------------

def tensor_array(tensor: onnx.TensorProto) -> np.ndarray:
    """A ``TensorProto``'s values as a numpy array of its type and shape (a writable copy, native byte order)."""
    where = f"tensor {tensor.name!r}"
    if external_data_helper.uses_external_data(tensor):
        raise OnnxError(f"{where}: its data is stored in an external file, which this reader does not read")
    if tensor.data_type not in onnx.TensorProto.DataType.values():
        raise OnnxError(f"{where}: data type {tensor.data_type} is not an ONNX TensorProto.DataType")
    try:
        array = numpy_helper.to_array(tensor)
    except (ValueError, TypeError) as exc:  # what to_array raises for a type or size it cannot convert
        raise OnnxError(f"{where} (data type {tensor.data_type}, dims {tuple(tensor.dims)}): {exc}") from None
    return np.array(array)  # to_array gives the native byte order; a copy, so that the arrays are writable


def value_info(info: onnx.ValueInfoProto) -> ValueInfo:
    """A ``ValueInfoProto``: a tensor's name, element type and shape (only tensor types are described)."""
    if not info.type.HasField("tensor_type"):
        return ValueInfo(info.name)
    tensor_type = info.type.tensor_type
    shape = None
    if tensor_type.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
                      for d in tensor_type.shape.dim)
    return ValueInfo(info.name, tensor_type.elem_type, shape)


def _string_value(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


_UNSUPPORTED_ATTRIBUTES = {AttributeProto.SPARSE_TENSOR, AttributeProto.SPARSE_TENSORS,
                           AttributeProto.TYPE_PROTO, AttributeProto.TYPE_PROTOS}


def attribute_value(attr: AttributeProto) -> Any:
    """An ``AttributeProto``'s value as a Python value (see the module docstring)."""
    if attr.type == AttributeProto.UNDEFINED:
        raise OnnxError(f"attribute {attr.name!r} has no type (IR version 1 files are not supported)")
    if attr.type in _UNSUPPORTED_ATTRIBUTES:
        raise OnnxError(f"attribute {attr.name!r}: type {AttributeProto.AttributeType.Name(attr.type)} "
                        f"(sparse tensors and type protos) is not supported")
    value = helper.get_attribute_value(attr)
    convert = {AttributeProto.STRING: _string_value, AttributeProto.STRINGS: _string_value,
               AttributeProto.TENSOR: tensor_array, AttributeProto.TENSORS: tensor_array,
               AttributeProto.GRAPH: graph_data, AttributeProto.GRAPHS: graph_data}.get(attr.type)
    if convert is None:  # FLOAT(S), INT(S): already Python numbers
        return value
    return [convert(v) for v in value] if isinstance(value, list) else convert(value)


def node_data(node: onnx.NodeProto) -> OnnxNode:
    """A ``NodeProto``; an attribute it cannot convert is an :class:`OnnxError` naming the node."""
    attrs: dict[str, Any] = {}
    for attr in node.attribute:
        try:
            attrs[attr.name] = attribute_value(attr)
        except OnnxError as exc:
            raise OnnxError(f"node {node.name or list(node.output)!r} ({node.op_type}): {exc}") from None
    return OnnxNode(node.name, node.op_type, tuple(node.input), tuple(node.output), attrs, node.domain)


def graph_data(graph: onnx.GraphProto) -> OnnxGraph:
    """A ``GraphProto``."""
    if len(graph.sparse_initializer):
        raise OnnxError(f"graph {graph.name!r}: sparse initializers are not supported")
    initializers: dict[str, np.ndarray] = {}
    for tensor in graph.initializer:
        if not tensor.name:
            raise OnnxError(f"graph {graph.name!r}: an initializer without a name")
        if tensor.name in initializers:
            raise OnnxError(f"graph {graph.name!r}: two initializers named {tensor.name!r}")
        initializers[tensor.name] = tensor_array(tensor)
    return OnnxGraph(graph.name, tuple(node_data(n) for n in graph.node), initializers,
                     tuple(value_info(v) for v in graph.input), tuple(value_info(v) for v in graph.output),
                     tuple(value_info(v) for v in graph.value_info))


def parse_model(data: bytes) -> OnnxModel:
    """A serialised ``ModelProto``."""
    try:
        proto = onnx.load_model_from_string(bytes(data))
    except DecodeError as exc:
        raise OnnxError(f"protobuf cannot parse it ({exc})") from None
    if not proto.HasField("graph"):
        raise OnnxError("the model has no graph")
    return OnnxModel(graph_data(proto.graph), proto.ir_version,
                     {o.domain: o.version for o in proto.opset_import}, proto.producer_name, proto.producer_version)


def read_onnx(path: str | Path, data: bytes | None = None) -> OnnxModel:
    """The ONNX model in the file ``path`` (or in ``data``, its bytes, when already read); errors name the file."""
    try:
        return parse_model(Path(path).read_bytes() if data is None else data)
    except OnnxError as exc:
        raise OnnxError(f"{path}: not an ONNX model this reader understands: {exc}") from None


__all__ = ["OnnxError", "OnnxGraph", "OnnxModel", "OnnxNode", "ValueInfo", "attribute_value", "graph_data",
           "node_data", "parse_model", "read_onnx", "tensor_array", "value_info"]
