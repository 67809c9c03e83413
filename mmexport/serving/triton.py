"""Triton model repository: DIR/NAME/config.pbtxt and DIR/NAME/1/model.onnx (onnxruntime_onnx) or
model.plan (tensorrt_plan), dynamic dims as -1, the batch axis as max_batch_size, dynamic batching.
config.pbtxt is Triton's own ModelConfig protobuf (tritonclient's model_config_pb2), written
with protobuf's text format: names are escaped, fields are the ones Triton parses."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ..artifacts import Staging
from ..errors import UsageError
from ..record import ArtifactRecord, kind_of, read
from ..specs import TensorSpec

PLATFORMS = {"onnx": ("onnxruntime_onnx", "model.onnx"), "engine": ("tensorrt_plan", "model.plan")}
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32", "bool": "TYPE_BOOL"}
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a folder name Triton accepts


def _schema():
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as exc:
        raise UsageError("writing a Triton repository needs tritonclient: pip install 'mmexport[serve]'") from exc
    return model_config_pb2, text_format


def batch_limit(record: ArtifactRecord) -> int | None:
    """Largest batch the artifact takes on a shared leading batch axis (None: no such axis)."""
    specs = record.inputs + record.outputs
    firsts = {str(s.labels()[0]) for s in specs}
    if len(firsts) != 1 or not all(s.batch_axis for s in record.inputs):
        return None
    limits = [s.batch_axis.max for s in record.inputs if s.batch_axis]
    if record.engine:  # an engine's profiles bound it too
        limits += [bounds["max"][0] for profile in record.engine.profiles for bounds in profile.values()]
    return min(limits)


def config_text(record: ArtifactRecord, name: str, max_batch: int, instances: int, kind: str) -> str:
    pb, text_format = _schema()
    config = pb.ModelConfig(name=name, platform=PLATFORMS[record.kind][0], max_batch_size=max_batch)
    for specs, field in ((record.graph_inputs, config.input), (record.outputs, config.output)):
        for spec in specs:
            _tensor(field.add(), spec, max_batch > 0, pb)
    if max_batch > 0:
        config.dynamic_batching.max_queue_delay_microseconds = 500
    group = config.instance_group.add()
    group.count = instances
    group.kind = pb.ModelInstanceGroup.KIND_GPU if kind == "gpu" else pb.ModelInstanceGroup.KIND_CPU
    meta = {"connector": record.connector, "preset": record.preset, "precision": record.precision}
    config.parameters["mmexport"].string_value = json.dumps(meta)
    return text_format.MessageToString(config)


def _tensor(entry, spec: TensorSpec, batched: bool, pb) -> None:
    dims = [-1 if isinstance(d, str) else d for d in spec.labels()]
    entry.name = spec.name
    entry.data_type = pb.DataType.Value(TRITON_TYPES[spec.dtype])
    entry.dims.extend(dims[1:] if batched else dims)


def max_batch_size(record: ArtifactRecord, max_batch: int | None, default_cap: int | None = None) -> int:
    """Triton's max_batch_size: 0 without a batch axis; else what was asked (checked against
    what the artifact takes), or that limit, capped at `default_cap` when nothing was asked."""
    limit = batch_limit(record)
    if limit is None:
        if max_batch:
            raise UsageError(f"{record.artifact} has no batch axis (inputs {[s.describe() for s in record.inputs]}); Triton batching does not apply")
        return 0
    if max_batch is None:
        return min(limit, default_cap) if default_cap else limit
    if not 1 <= max_batch <= limit:
        raise UsageError(f"--max-batch {max_batch} is outside what {record.artifact} takes (1..{limit})")
    return max_batch


def _grid_config(record: ArtifactRecord, name: str, instances: int) -> str:
    """The Python step that derives the graph's inputs from the processor's tensors."""
    pb, text_format = _schema()
    config = pb.ModelConfig(name=name, backend="python", max_batch_size=0)
    derived = record.derivation
    for specs, field in ((record.inputs, config.input), (derived.inputs, config.output)):
        for spec in specs:
            _tensor(field.add(), spec, False, pb)
    group = config.instance_group.add()
    group.count, group.kind = instances, pb.ModelInstanceGroup.KIND_CPU
    config.parameters["derivation"].string_value = json.dumps(record.derived.to_json() if record.derived else None)
    return text_format.MessageToString(config)


def _ensemble_config(record: ArtifactRecord, name: str) -> str:
    """NAME: the processor's tensors in, the graph's outputs out, through NAME_grid then NAME_graph."""
    pb, text_format = _schema()
    config = pb.ModelConfig(name=name, platform="ensemble", max_batch_size=0)
    for specs, field in ((record.inputs, config.input), (record.outputs, config.output)):
        for spec in specs:
            _tensor(field.add(), spec, False, pb)
    derive = config.ensemble_scheduling.step.add(model_name=f"{name}_grid", model_version=-1)
    graph = config.ensemble_scheduling.step.add(model_name=f"{name}_graph", model_version=-1)
    for spec in record.inputs:
        derive.input_map[spec.name] = spec.name
    for spec in record.derivation.inputs:
        derive.output_map[spec.name] = f"derived_{spec.name}"
        graph.input_map[spec.name] = f"derived_{spec.name}"
    for spec in record.outputs:
        graph.output_map[spec.name] = spec.name
    model = record.model.to_json() if record.model else None
    config.parameters["mmexport"].string_value = json.dumps({"connector": record.connector, "precision": record.precision, "model": model})
    return text_format.MessageToString(config)


def _write_entry(repo: Path, name: str, files: dict[str, bytes | Path]) -> Path:
    """One repository entry, staged and renamed into place whole (an old one replaced only then)."""
    with Staging(repo / name, folder_output=True) as staging:
        for relative, content in files.items():
            target = staging.dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copy2(content, target)
            else:
                target.write_bytes(content)
        staging.commit_folder()
    return repo / name


def write_repository(
    artifact: str | Path, repo: str | Path, name: str | None = None, max_batch: int | None = None, instances: int = 1, kind: str = "cpu"
) -> Path:
    artifact, repo = Path(artifact), Path(repo)
    if kind not in ("cpu", "gpu"):  # options first: they cost nothing to check
        raise UsageError(f"--kind must be cpu or gpu, not '{kind}'")
    if instances < 1:
        raise UsageError("--instances must be at least 1")
    kind_of(artifact)
    record = read(artifact)
    if record.kind == "engine" and kind == "cpu":
        raise UsageError("a TensorRT engine runs on a GPU: use --kind gpu")
    name = name or artifact.name.split(".")[0]
    if not NAME.fullmatch(name):
        raise UsageError(f"--name '{name}' is not a Triton model name; use letters, digits, '_', '.' and '-'")
    repo.mkdir(parents=True, exist_ok=True)
    derived = record.derivation.beside_graph  # a Python step derives the graph's inputs ahead of it
    graph_name = f"{name}_graph" if derived else name
    files: dict[str, bytes | Path] = {"config.pbtxt": config_text(record, graph_name, max_batch_size(record, max_batch), instances, kind).encode()}
    files[f"1/{PLATFORMS[record.kind][1]}"] = artifact
    if record.external_data:
        files[f"1/{record.external_data}"] = artifact.parent / record.external_data
    _write_entry(repo, graph_name, files)
    if derived:
        grid_model = Path(__file__).with_name("triton_grid.py")
        _write_entry(repo, f"{name}_grid", {"config.pbtxt": _grid_config(record, f"{name}_grid", instances).encode(), "1/model.py": grid_model})
        _write_entry(repo, name, {"config.pbtxt": _ensemble_config(record, name).encode(), "1/.keep": b""})
    return repo / name
