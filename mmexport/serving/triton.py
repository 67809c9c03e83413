"""Triton model repository: DIR/NAME/config.pbtxt and DIR/NAME/1/model.onnx (onnxruntime_onnx) or
model.plan (tensorrt_plan), dynamic dims as -1, the batch axis as max_batch_size, dynamic batching."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .. import manifest
from ..errors import UsageError
from ..connectors import BATCH_AXES

TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32", "bool": "TYPE_BOOL"}


def _record(artifact: Path) -> tuple[dict[str, Any], str, str]:
    if artifact.suffix in (".engine", ".plan"):
        from ..engines.runner import read_sidecar

        return read_sidecar(artifact), "tensorrt_plan", "model.plan"
    if artifact.suffix == ".onnx":
        return manifest.read(artifact), "onnxruntime_onnx", "model.onnx"
    raise UsageError(f"{artifact} is neither an .onnx nor an .engine made by mmexport")


def batch_limit(record: dict[str, Any]) -> int | None:
    """Largest batch the artifact takes on a shared leading batch axis (None: no such axis)."""
    specs = record["inputs"] + record["outputs"]
    if not all(str(s["shape"][0]) in BATCH_AXES for s in specs) or len({str(s["shape"][0]) for s in specs}) != 1:
        return None
    limits = [s["dynamic_axes"]["0"]["max"] for s in record["inputs"]]
    for spec in record["inputs"]:
        limits += [p["max"][0] for p in spec.get("profiles", [])]  # an engine: its profiles bound it too
    return min(limits)


def _tensor(spec: dict[str, Any], batched: bool) -> str:
    dims = [-1 if isinstance(d, str) else d for d in spec["shape"]]
    dims = dims[1:] if batched else dims
    return f'  {{\n    name: "{spec["name"]}"\n    data_type: {TRITON_TYPES[spec["dtype"]]}\n    dims: [ {", ".join(map(str, dims))} ]\n  }}'


def config_text(record: dict[str, Any], name: str, platform: str, max_batch: int, instances: int, kind: str) -> str:
    batched = max_batch > 0
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {max_batch}",
        "input [\n" + ",\n".join(_tensor(s, batched) for s in record["inputs"]) + "\n]",
        "output [\n" + ",\n".join(_tensor(s, batched) for s in record["outputs"]) + "\n]",
    ]
    if batched:
        lines.append("dynamic_batching {\n  max_queue_delay_microseconds: 500\n}")
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_{kind.upper()}\n  }}\n]")
    meta = json.dumps({"connector": record["connector"], "preset": record["preset"], "precision": record.get("precision", "fp32")})
    lines.append(f'parameters {{\n  key: "mmexport"\n  value: {{ string_value: {json.dumps(meta)} }}\n}}')
    return "\n".join(lines) + "\n"


def write_repository(
    artifact: str | Path, repo: str | Path, name: str | None = None, max_batch: int | None = None, instances: int = 1, kind: str = "cpu"
) -> Path:
    artifact, repo = Path(artifact), Path(repo)
    if kind not in ("cpu", "gpu"):  # options first: they cost nothing to check
        raise UsageError(f"--kind must be cpu or gpu, not '{kind}'")
    record, platform, filename = _record(artifact)
    if platform == "tensorrt_plan" and kind == "cpu":
        raise UsageError("a TensorRT engine runs on a GPU: use --kind gpu")
    if instances < 1:
        raise UsageError("--instances must be at least 1")
    name = name or artifact.name.split(".")[0]
    limit = batch_limit(record)
    if limit is None:
        if max_batch:
            raise UsageError(f"{artifact.name} has no batch axis (inputs {[s['shape'] for s in record['inputs']]}); Triton batching does not apply")
        max_batch = 0
    else:
        max_batch = limit if max_batch is None else max_batch
        if not 1 <= max_batch <= limit:
            raise UsageError(f"--max-batch {max_batch} is outside what {artifact.name} takes (1..{limit})")
    repo.mkdir(parents=True, exist_ok=True)
    final = repo / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=repo))
    try:
        (staging / "1").mkdir()
        shutil.copy2(artifact, staging / "1" / filename)
        if record.get("external_data"):
            shutil.copy2(artifact.parent / record["external_data"], staging / "1" / record["external_data"])
        (staging / "config.pbtxt").write_text(config_text(record, name, platform, max_batch, instances, kind))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
