"""Protobuf wire-format primitives, shared by the GraphDef and ONNX readers (no ``protobuf`` package).

:mod:`fiqa_bench.formats.graphdef` (TensorFlow frozen graphs) and
:mod:`fiqa_bench.formats.onnx_graph` (ONNX models) both decode their files with
these few functions; each module documents the field numbers of its own
messages.

Wire format (https://protobuf.dev/programming-guides/encoding/)
-----------------------------------------------------------------
A message is a sequence of fields, each a *key* then a value.  The key is a
varint ``field_number << 3 | wire_type``.  Varints are little-endian groups
of 7 bits, the high bit of each byte set when another byte follows; an
``int32``/``int64``/enum holds a negative value as its 64-bit two's
complement (ten bytes).  Wire types: 0 varint, 1 eight little-endian bytes
(``double``, ``fixed64``), 2 a varint length then that many bytes (strings,
bytes, sub-messages and *packed* repeated scalars), 5 four little-endian
bytes (``float``, ``fixed32``).  Types 3 and 4 (groups) are used by neither
TensorFlow's nor ONNX's protos and are rejected.  A repeated scalar may
arrive packed (one type-2 field) or one field per element; both are
accepted, as the specification requires.  Unknown fields are skipped by the
callers.

:func:`encode_varint` and :func:`encode_field` write the same format back,
so a reader's ``(number, wire, value)`` triples re-encode to an equivalent
message (used to make edited copies of a model, e.g. in tests).
"""

from __future__ import annotations

import struct
from typing import Any, Iterator

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5


class WireFormatError(ValueError):
    """The bytes are not a well-formed protobuf message (the message says where and why)."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint starting at ``buf[pos]`` and the position after it."""
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise WireFormatError(f"truncated varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireFormatError(f"varint longer than 10 bytes ending at byte {pos}")


def signed64(value: int) -> int:
    """A varint read as a two's-complement int64 (how int32, int64 and enums store negatives)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` for each field of the message ``buf``, in order.

    The value is an int for varints, ``bytes`` of length 8 or 4 for the fixed
    types, and the payload ``bytes`` for length-delimited fields.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireFormatError(f"field number 0 at byte {pos}")
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == FIXED64:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == FIXED32:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == LENGTH_DELIMITED:
            length, pos = read_varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise WireFormatError(f"wire type {wire} (field {number}) is not supported")
        if pos > end:
            raise WireFormatError(f"field {number} runs past the end of its message ({pos} > {end} bytes)")
        yield number, wire, value


def repeated_scalars(wire: int, value: Any, scalar: str) -> list:
    """Elements of one occurrence of a repeated scalar field, packed or not.

    ``scalar`` is ``"varint"`` (unsigned; apply :func:`signed64` for signed
    types), ``"f"`` (float32) or ``"d"`` (double).
    """
    if scalar == "varint":
        if wire == VARINT:
            return [value]
        if wire != LENGTH_DELIMITED:
            raise WireFormatError(f"a varint list cannot have wire type {wire}")
        out, pos = [], 0
        while pos < len(value):
            v, pos = read_varint(value, pos)
            out.append(v)
        return out
    size, wire_single = (4, FIXED32) if scalar == "f" else (8, FIXED64)
    if wire not in (wire_single, LENGTH_DELIMITED) or len(value) % size:
        raise WireFormatError(f"a {scalar!r} list cannot be {len(value)} bytes of wire type {wire}")
    return list(struct.unpack(f"<{len(value) // size}{scalar}", value))


def text(value: bytes) -> str:
    """A ``string`` field's payload as text (UTF-8)."""
    return bytes(value).decode("utf-8")


def encode_varint(value: int) -> bytes:
    """``value`` as a varint; a negative value as its 64-bit two's complement (ten bytes), as for int64."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_field(number: int, wire: int, value: Any) -> bytes:
    """One field, the inverse of what :func:`iter_fields` yields: an int for :data:`VARINT`,
    4 or 8 raw bytes for :data:`FIXED32` / :data:`FIXED64`, the payload for :data:`LENGTH_DELIMITED`
    (a ``str`` is encoded as UTF-8)."""
    key = encode_varint(number << 3 | wire)
    if wire == VARINT:
        return key + encode_varint(int(value))
    if isinstance(value, str):
        value = value.encode("utf-8")
    if wire == LENGTH_DELIMITED:
        return key + encode_varint(len(value)) + bytes(value)
    size = {FIXED32: 4, FIXED64: 8}.get(wire)
    if size is None or len(value) != size:
        raise WireFormatError(f"field {number}: cannot encode {len(value)} bytes as wire type {wire}")
    return key + bytes(value)
