"""Write large ONNX graphs as one file without a second in-memory copy of their weights.

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


def _repeated(field) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6 (label is deprecated there)
    if flag is None:
        return field.label == field.LABEL_REPEATED
    return flag() if callable(flag) else bool(flag)


def _without(message, skip: str):
    """A shallow copy of `message` without field `skip` (that field is the large one)."""
    copy = type(message)()
    for field, value in message.ListFields():
        if field.name == skip:
            continue
        if _repeated(field):
            getattr(copy, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(copy, field.name).CopyFrom(value)
        else:
            setattr(copy, field.name, value)
    return copy


def save(model: onnx.ModelProto, path: Path, sizes: list[int] | None = None) -> None:
    """onnx.save without serializing the whole model at once (one tensor in memory at a time);
    the model is not modified. Under 2 GB: protobuf's own limit is on each message, not the file.
    `sizes`: each initializer's ByteSize, where the caller has them already."""
    graph = _without(model.graph, "initializer").SerializeToString()
    sizes = sizes if sizes is not None else [t.ByteSize() for t in model.graph.initializer]
    graph_length = len(graph) + sum(len(_field(_INITIALIZER, size)) + size for size in sizes)
    with open(path, "wb") as out:
        out.write(_without(model, "graph").SerializeToString())
        out.write(_field(_GRAPH, graph_length))
        out.write(graph)
        for tensor, size in zip(model.graph.initializer, sizes):
            out.write(_field(_INITIALIZER, size))
            out.write(tensor.SerializeToString())


EXTERNAL_DATA_BYTES = 1 << 31  # protobuf's limit for one message: a larger graph keeps its tensors outside


def write(model: onnx.ModelProto, path: Path) -> None:
    """`model` to `path`, one file when it fits (streamed), else with PATH.data beside it."""
    sizes = [t.ByteSize() for t in model.graph.initializer]
    if sum(sizes) < EXTERNAL_DATA_BYTES:
        save(model, path, sizes)
        return
    large = onnx.ModelProto()  # saving with external data rewrites the message: work on a copy
    large.CopyFrom(model)
    onnx.save(large, str(path), save_as_external_data=True, location=path.name + ".data")
