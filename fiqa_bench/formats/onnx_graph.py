"""A small reader of ONNX models (``.onnx``), without the ``onnx`` or ``protobuf`` packages.

An ONNX file is one serialised ``onnx.ModelProto`` message: a header
(IR version, operator-set imports, producer) and a ``GraphProto`` holding the
nodes in topological order and the weights as *initializers* (named
tensors).  This module decodes it with the wire-format primitives of
:mod:`fiqa_bench.formats.protobuf_wire` and returns plain data: :class:`OnnxNode`
(op type, input and output names, attributes as Python values),
initializers as numpy arrays, and the declared inputs and outputs
(:class:`ValueInfo`).  It reads; it does not run anything (the networks
ported from ONNX files are explicit PyTorch modules, e.g.
:mod:`fiqa_bench.recognition.mobilefacenet`).

The messages and field numbers read (``onnx/onnx.proto``, IR version <= 10)
-----------------------------------------------------------------------------
* ``ModelProto``: 1 ``ir_version`` (int64), 2 ``producer_name``, 3
  ``producer_version``, 4 ``domain``, 5 ``model_version``, 6 ``doc_string``,
  7 ``graph`` (``GraphProto``), 8 ``opset_import`` (repeated
  ``OperatorSetIdProto``: 1 ``domain``, 2 ``version``); 14
  ``metadata_props`` and later fields (training info, functions) are skipped.
* ``GraphProto``: 1 ``node`` (repeated ``NodeProto``), 2 ``name``, 5
  ``initializer`` (repeated ``TensorProto``), 10 ``doc_string``, 11
  ``input``, 12 ``output``, 13 ``value_info`` (repeated ``ValueInfoProto``);
  15 ``sparse_initializer`` is rejected.
* ``NodeProto``: 1 ``input``, 2 ``output`` (repeated string; ``""`` is an
  omitted optional input), 3 ``name``, 4 ``op_type``, 5 ``attribute``
  (repeated ``AttributeProto``), 6 ``doc_string``, 7 ``domain``.
* ``AttributeProto``: 1 ``name``, 20 ``type`` (``AttributeType``: 1 FLOAT,
  2 INT, 3 STRING, 4 TENSOR, 5 GRAPH, 6 FLOATS, 7 INTS, 8 STRINGS, 9
  TENSORS, 10 GRAPHS; 11-14, sparse tensors and type protos, are rejected),
  then the value in the field of its type: 2 ``f`` (float, fixed32), 3 ``i``
  (int64), 4 ``s`` (bytes), 5 ``t`` (``TensorProto``), 6 ``g``
  (``GraphProto``), 7 ``floats``, 8 ``ints``, 9 ``strings``, 10 ``tensors``,
  11 ``graphs``.  A file without ``type`` (IR version 1) gets the type of
  the field present.
* ``TensorProto``: 1 ``dims`` (repeated int64), 2 ``data_type``
  (``TensorProto.DataType``, see :data:`NUMPY_DTYPE`), 8 ``name``, 9
  ``raw_data`` (the little-endian array, row-major), else the typed list: 4
  ``float_data`` (FLOAT), 5 ``int32_data`` (INT32 and every narrower type,
  BOOL, and FLOAT16 as its bit pattern), 7 ``int64_data`` (INT64), 10
  ``double_data`` (DOUBLE), 11 ``uint64_data`` (UINT32, UINT64); 14
  ``data_location`` = 1 (EXTERNAL: the data in another file) is rejected.
  Unlike TensorFlow, ONNX stores every value: a list must hold exactly
  ``prod(dims)`` of them.
* ``ValueInfoProto``: 1 ``name``, 2 ``type`` (``TypeProto``: 1
  ``tensor_type``: 1 ``elem_type``, 2 ``shape``); ``TensorShapeProto``: 1
  ``dim`` (repeated ``Dimension``: 1 ``dim_value`` (int64) or 2
  ``dim_param`` (a symbolic name)).  Note that the dimension is field 1
  here, field 2 in TensorFlow's ``TensorShapeProto``.

Attribute values become Python values: FLOAT -> float (the float32 value,
widened), INT -> int, STRING -> ``str`` (UTF-8) or ``bytes`` when it is not
text, TENSOR -> numpy array, GRAPH -> :class:`OnnxGraph`, and the plural
types -> lists of those.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.formats.protobuf_wire import (
    FIXED32,
    LENGTH_DELIMITED,
    WireFormatError,
    iter_fields,
    repeated_scalars,
    signed64,
    text,
)


class OnnxError(WireFormatError):
    """The bytes are not an ONNX model this reader understands (the message says where and why)."""


#: ``TensorProto.DataType`` -> numpy dtype (little-endian), for the types this reader decodes.
NUMPY_DTYPE: dict[int, np.dtype] = {
    1: np.dtype("<f4"),   # FLOAT
    2: np.dtype("u1"),    # UINT8
    3: np.dtype("i1"),    # INT8
    4: np.dtype("<u2"),   # UINT16
    5: np.dtype("<i2"),   # INT16
    6: np.dtype("<i4"),   # INT32
    7: np.dtype("<i8"),   # INT64
    9: np.dtype("?"),     # BOOL
    10: np.dtype("<f2"),  # FLOAT16
    11: np.dtype("<f8"),  # DOUBLE
    12: np.dtype("<u4"),  # UINT32
    13: np.dtype("<u8"),  # UINT64
}
#: ``TensorProto`` field that holds the values of each data type when ``raw_data`` is absent.
_TYPED_FIELD = {1: 4, 2: 5, 3: 5, 4: 5, 5: 5, 6: 5, 9: 5, 10: 5, 7: 7, 11: 10, 12: 11, 13: 11}

#: ``AttributeProto.AttributeType`` values and the field that holds each.
FLOAT, INT, STRING, TENSOR, GRAPH, FLOATS, INTS, STRINGS, TENSORS, GRAPHS = range(1, 11)
_ATTRIBUTE_FIELD = {FLOAT: 2, INT: 3, STRING: 4, TENSOR: 5, GRAPH: 6,
                    FLOATS: 7, INTS: 8, STRINGS: 9, TENSORS: 10, GRAPHS: 11}


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


# --- messages ------------------------------------------------------------------------------------

def _signed_list(wire: int, value: Any) -> list[int]:
    return [signed64(v) for v in repeated_scalars(wire, value, "varint")]


def parse_tensor(buf: bytes) -> tuple[str, np.ndarray]:
    """A ``TensorProto``: its name and its values as a numpy array of its type and shape."""
    name, dims, data_type, raw, location = "", [], 0, None, 0
    typed: dict[int, list] = {}
    for number, wire, value in iter_fields(buf):
        if number == 1:
            dims += _signed_list(wire, value)
        elif number == 2:
            data_type = signed64(value)
        elif number == 8:
            name = text(value)
        elif number == 9:
            raw = bytes(value)
        elif number == 4:
            typed.setdefault(4, []).extend(repeated_scalars(wire, value, "f"))
        elif number == 10:
            typed.setdefault(10, []).extend(repeated_scalars(wire, value, "d"))
        elif number in (5, 7):
            typed.setdefault(number, []).extend(_signed_list(wire, value))
        elif number == 11:
            typed.setdefault(11, []).extend(repeated_scalars(wire, value, "varint"))
        elif number == 14:
            location = value
    where = f"tensor {name!r}"
    if location == 1:
        raise OnnxError(f"{where}: its data is stored in an external file, which this reader does not read")
    if data_type not in NUMPY_DTYPE:
        raise OnnxError(f"{where}: data type {data_type} is not supported (known: {sorted(NUMPY_DTYPE)})")
    if any(d < 0 for d in dims):
        raise OnnxError(f"{where}: negative dimension in {tuple(dims)}")
    dtype, shape = NUMPY_DTYPE[data_type], tuple(dims)
    count = int(np.prod(shape, dtype=np.int64))
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise OnnxError(f"{where}: raw_data holds {len(raw)} bytes, shape {shape} of {dtype} "
                            f"needs {count * dtype.itemsize}")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    else:
        values = typed.get(_TYPED_FIELD[data_type], [])
        if len(values) != count:
            raise OnnxError(f"{where}: shape {shape} needs {count} values, the file lists {len(values)}")
        if data_type == 10:  # float16 values are listed as their 16-bit patterns
            array = np.array(values, dtype="<u2").view(dtype).reshape(shape)
        else:
            array = np.array(values, dtype=dtype).reshape(shape)
    return name, array.astype(dtype.newbyteorder("="))


def parse_value_info(buf: bytes) -> ValueInfo:
    """A ``ValueInfoProto`` (a tensor's name, element type and shape)."""
    name, elem_type, shape = "", 0, None
    for number, _, value in iter_fields(buf):
        if number == 1:
            name = text(value)
        elif number == 2:
            for n, _, v in iter_fields(value):
                if n != 1:  # sequence, map, optional ... types: only tensors are described
                    continue
                for tn, _, tv in iter_fields(v):
                    if tn == 1:
                        elem_type = signed64(tv)
                    elif tn == 2:
                        shape = _parse_shape(tv)
    return ValueInfo(name, elem_type, shape)


def _parse_shape(buf: bytes) -> tuple[int | str | None, ...]:
    dims: list[int | str | None] = []
    for number, _, value in iter_fields(buf):
        if number == 1:
            dim: int | str | None = None
            for n, _, v in iter_fields(value):
                if n == 1:
                    dim = signed64(v)
                elif n == 2:
                    dim = text(v)
            dims.append(dim)
    return tuple(dims)


def _string_value(value: bytes) -> str | bytes:
    try:
        return text(value)
    except UnicodeDecodeError:
        return bytes(value)


def parse_attribute(buf: bytes) -> tuple[str, Any]:
    """An ``AttributeProto``: its name and its value as a Python value (see the module docstring)."""
    name, kind = "", 0
    seen: dict[int, list[tuple[int, Any]]] = {}
    for number, wire, value in iter_fields(buf):
        if number == 1:
            name = text(value)
        elif number == 20:
            kind = signed64(value)
        elif 2 <= number <= 11:
            seen.setdefault(number, []).append((wire, value))
        elif number in (22, 23, 14, 15):
            raise OnnxError(f"attribute {name!r}: sparse tensors and type protos are not supported")
    if not kind:  # IR version 1 files carry no type: take that of the field present
        kinds = [k for k, f in _ATTRIBUTE_FIELD.items() if f in seen]
        kind = kinds[0] if len(kinds) == 1 else (INTS if not seen else 0)
        if not kind:
            raise OnnxError(f"attribute {name!r}: no type and {len(seen)} value fields")
    if kind not in _ATTRIBUTE_FIELD:
        raise OnnxError(f"attribute {name!r}: attribute type {kind} is not supported")
    occurrences = seen.get(_ATTRIBUTE_FIELD[kind], [])
    if kind in (FLOAT, INT, STRING, TENSOR, GRAPH) and not occurrences:
        if kind in (FLOAT, INT):  # proto3 leaves a zero default out
            return name, 0.0 if kind == FLOAT else 0
        raise OnnxError(f"attribute {name!r}: declared type {kind} but no value")
    if kind == FLOAT:
        wire, value = occurrences[-1]
        if wire != FIXED32:
            raise OnnxError(f"attribute {name!r}: float with wire type {wire}")
        return name, struct.unpack("<f", value)[0]
    if kind == INT:
        return name, signed64(occurrences[-1][1])
    if kind == STRING:
        return name, _string_value(occurrences[-1][1])
    if kind == TENSOR:
        return name, parse_tensor(occurrences[-1][1])[1]
    if kind == GRAPH:
        return name, parse_graph(occurrences[-1][1])
    if kind == FLOATS:
        return name, [float(v) for wire, value in occurrences for v in repeated_scalars(wire, value, "f")]
    if kind == INTS:
        return name, [v for wire, value in occurrences for v in _signed_list(wire, value)]
    if kind == STRINGS:
        return name, [_string_value(value) for _, value in occurrences]
    if kind == TENSORS:
        return name, [parse_tensor(value)[1] for _, value in occurrences]
    return name, [parse_graph(value) for _, value in occurrences]  # GRAPHS


def parse_node(buf: bytes) -> OnnxNode:
    """A ``NodeProto``."""
    name, op_type, domain = "", "", ""
    inputs: list[str] = []
    outputs: list[str] = []
    attributes: list[bytes] = []
    for number, _, value in iter_fields(buf):
        if number == 1:
            inputs.append(text(value))
        elif number == 2:
            outputs.append(text(value))
        elif number == 3:
            name = text(value)
        elif number == 4:
            op_type = text(value)
        elif number == 5:
            attributes.append(value)
        elif number == 7:
            domain = text(value)
    if not op_type:
        raise OnnxError(f"node {name!r} (outputs {outputs}) has no op_type")
    attrs: dict[str, Any] = {}
    for raw in attributes:
        try:
            key, attr = parse_attribute(raw)
        except WireFormatError as exc:
            raise OnnxError(f"node {name or outputs!r} ({op_type}): {exc}") from None
        attrs[key] = attr
    return OnnxNode(name, op_type, tuple(inputs), tuple(outputs), attrs, domain)


def parse_graph(buf: bytes) -> OnnxGraph:
    """A ``GraphProto``."""
    name = ""
    nodes: list[OnnxNode] = []
    initializers: dict[str, np.ndarray] = {}
    infos: dict[int, list[ValueInfo]] = {11: [], 12: [], 13: []}
    for number, _, value in iter_fields(buf):
        if number == 1:
            nodes.append(parse_node(value))
        elif number == 2:
            name = text(value)
        elif number == 5:
            key, array = parse_tensor(value)
            if not key:
                raise OnnxError(f"graph {name!r}: an initializer without a name")
            if key in initializers:
                raise OnnxError(f"graph {name!r}: two initializers named {key!r}")
            initializers[key] = array
        elif number in infos:
            infos[number].append(parse_value_info(value))
        elif number == 15:
            raise OnnxError(f"graph {name!r}: sparse initializers are not supported")
    return OnnxGraph(name, tuple(nodes), initializers, tuple(infos[11]), tuple(infos[12]), tuple(infos[13]))


def parse_model(data: bytes) -> OnnxModel:
    """A serialised ``ModelProto``."""
    try:
        graph, ir_version, producer, version = None, 0, "", ""
        opsets: dict[str, int] = {}
        for number, wire, value in iter_fields(bytes(data)):
            if number == 1:
                ir_version = signed64(value)
            elif number == 2:
                producer = text(value)
            elif number == 3:
                version = text(value)
            elif number == 7:
                if wire != LENGTH_DELIMITED:
                    raise OnnxError(f"field 7 (graph) has wire type {wire}")
                graph = parse_graph(value)
            elif number == 8:
                domain, opset = "", 0
                for n, _, v in iter_fields(value):
                    if n == 1:
                        domain = text(v)
                    elif n == 2:
                        opset = signed64(v)
                opsets[domain] = opset
    except OnnxError:
        raise
    except (WireFormatError, UnicodeDecodeError) as exc:  # a primitive's error, as this reader's
        raise OnnxError(str(exc)) from None
    if graph is None:
        raise OnnxError("the model has no graph (field 7)")
    return OnnxModel(graph, ir_version, opsets, producer, version)


def read_onnx(path: str | Path, data: bytes | None = None) -> OnnxModel:
    """The ONNX model in the file ``path`` (or in ``data``, its bytes, when already read); errors name the file."""
    try:
        return parse_model(Path(path).read_bytes() if data is None else data)
    except OnnxError as exc:
        raise OnnxError(f"{path}: not an ONNX model this reader understands: {exc}") from None


__all__ = ["NUMPY_DTYPE", "OnnxError", "OnnxGraph", "OnnxModel", "OnnxNode", "ValueInfo", "parse_attribute",
           "parse_graph", "parse_model", "parse_node", "parse_tensor", "parse_value_info", "read_onnx"]
