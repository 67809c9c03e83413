"""Write a large ONNX graph as one file without a second in-memory copy of its weights.

Serializing a ModelProto holds the whole message and its serialized bytes at once (a 1.3 GB
vision tower peaked at 8 GB). Instead the exporter streams the tensors to an external data
file, and this module writes the single file piece by piece: protobuf lets a message's fields
come in any order and repeated fields one at a time, so the graph is written without its
initializers, then each initializer read from the data file, one tensor in memory at a time."""

from __future__ import annotations

import mmap
from pathlib import Path

import onnx

_RAW_DATA = 9  # TensorProto.raw_data
_INITIALIZER = 5  # GraphProto.initializer
_GRAPH = 7  # ModelProto.graph


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, length: int) -> bytes:
    """The key and length prefix of a length-delimited field."""
    return _varint(number << 3 | 2) + _varint(length)


def _location(tensor: onnx.TensorProto) -> tuple[int, int]:
    entries = {e.key: e.value for e in tensor.external_data}
    return int(entries.get("offset", 0)), int(entries["length"])


def _tensor_head(tensor: onnx.TensorProto) -> bytes:
    """The tensor without its data and without the external-data reference."""
    head = onnx.TensorProto()
    head.CopyFrom(tensor)
    head.ClearField("external_data")
    head.ClearField("data_location")
    head.ClearField("raw_data")
    return head.SerializeToString()


def inline(source: Path, destination: Path) -> None:
    """`source` (an ONNX file whose initializers live in external data) as one file."""
    model = onnx.load(str(source), load_external_data=False)
    tensors = list(model.graph.initializer)
    external = [t for t in tensors if t.data_location == onnx.TensorProto.EXTERNAL]
    if not external:
        onnx.save(model, str(destination))
        return
    del model.graph.initializer[:]
    graph = model.graph.SerializeToString()
    model.ClearField("graph")
    pieces = [_piece(t) for t in tensors]  # (serialized head or whole tensor, external (offset, length) or None)
    sizes = [len(head) + (len(_field(_RAW_DATA, loc[1])) + loc[1] if loc else 0) for head, loc in pieces]
    graph_length = len(graph) + sum(len(_field(_INITIALIZER, size)) + size for size in sizes)
    data_path = source.parent / next(e.value for e in external[0].external_data if e.key == "location")
    with open(destination, "wb") as out, open(data_path, "rb") as handle:
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            out.write(model.SerializeToString())
            out.write(_field(_GRAPH, graph_length))
            out.write(graph)
            for (head, location), size in zip(pieces, sizes):
                out.write(_field(_INITIALIZER, size))
                out.write(head)
                if location is not None:
                    offset, length = location
                    out.write(_field(_RAW_DATA, length))
                    out.write(data[offset : offset + length])
        finally:
            data.close()


def _piece(tensor: onnx.TensorProto) -> tuple[bytes, tuple[int, int] | None]:
    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return tensor.SerializeToString(), None  # a small constant the exporter kept inline
    return _tensor_head(tensor), _location(tensor)
