"""`mmexport onnx` and `mmexport check` as functions: resolve, load, export, gate, install."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import connectors, manifest
from ..artifacts import Staging, manifest_path
from ..connectors import Connector, Tolerance
from ..connectors.loading import ConnectorWeights, build_module, load_weights
from ..errors import ParityError, UsageError
from .parity import ParityReport, run_parity
from .torch_to_onnx import DEFAULT_OPSET, export_module

Step = Callable[[str], None]


@dataclass
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    parity: ParityReport | None
    weights: ConnectorWeights | None
    seconds: float
    warnings: list[str] = field(default_factory=list)


def default_output(connector: str, preset: str) -> Path:
    return Path(f"{connector}-{preset}.onnx")


def _weights_record(weights: ConnectorWeights | None) -> dict[str, Any]:
    if weights is None:
        return {"source": "random", "seed": 0}
    return {
        "source": "checkpoint",
        "path": weights.path,
        "layout": weights.layout,
        "digest": weights.digest,
        "ignored_keys": weights.ignored_keys,
        "layer": weights.layer,
    }


def resolve(connector_name: str, preset: str | None, weights_path: str | Path | None, layer: int | None = None):
    connector = connectors.get(connector_name)
    preset = preset or connector.default_preset
    config = connector.preset(preset)
    if layer is not None and not weights_path:
        raise UsageError("--layer picks a layer of a checkpoint; give --weights too")
    weights = load_weights(connector, weights_path, config, layer) if weights_path else None
    return connector, preset, (weights.config if weights else config), weights


def export(
    connector_name: str,
    preset: str | None = None,
    weights: str | Path | None = None,
    output: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    device: str = "cpu",
    tolerance: Tolerance | None = None,
    shapes: list[dict[str, int]] | None = None,
    step: Step = lambda message: None,
    layer: int | None = None,
) -> ExportResult:
    """Export a connector to ONNX, gate it on parity, and install it with its manifest.
    A failed gate raises ParityError and leaves the files in OUTPUT.failed/ for inspection."""
    start = time.perf_counter()
    step("loading weights" if weights else "building the module")
    connector, preset, config, loaded = resolve(connector_name, preset, weights, layer)
    warnings = list(loaded.warnings) if loaded else ["no --weights given: the connector has random weights (seed 0)"]
    output = Path(output) if output else default_output(connector.name, preset)
    if output.suffix != ".onnx":
        raise UsageError(f"output must end in .onnx: {output}")
    for sizes in shapes or []:
        connector.check_sizes(config, sizes)
    module = build_module(connector, config, loaded)
    with Staging(output) as staging:
        step(f"exporting to ONNX (opset {opset})")
        external = export_module(module, connector, config, staging.path(), opset)
        report = None
        if check:
            step("checking parity in ONNX Runtime")
            report = run_parity(staging.path(), module, connector, config, tolerance, shapes, device=device)
        record = {
            "format": manifest.FORMAT,
            "artifact": output.name,
            "kind": "onnx",
            "precision": "fp32",
            "connector": connector.name,
            "preset": preset,
            "config": dataclasses.asdict(config),
            "weights": _weights_record(loaded),
            "inputs": [s.to_json() for s in connector.inputs(config)],
            "outputs": [s.to_json() for s in connector.outputs(config)],
            "opset": opset,
            "external_data": output.name + ".data" if external else None,
            "onnx_sha256": manifest.file_sha256(staging.path()),
            "parity": report.to_json() if report else None,
            "tools": manifest.tool_versions(),
            "created": manifest.now(),
            "warnings": warnings,
        }
        manifest.write(staging.path(manifest_path(output).name), record)
        if report is not None and not report.passed:
            kept = staging.keep_as(output.with_suffix(".failed"))
            raise ParityError(f"{report.failure()}; nothing installed, files kept in {kept}/")
        names = ([output.name + ".data"] if external else []) + [output.name, manifest_path(output).name]
        staging.commit(names)
    return ExportResult(output, record, report, loaded, time.perf_counter() - start, warnings)


def reference_module(artifact: Path, record: dict[str, Any], weights: str | Path | None = None):
    """The fp32 PyTorch module an artifact was exported from, rebuilt from its manifest."""
    connector: Connector = connectors.get(record["connector"])
    recorded = record["weights"]
    weights_path = weights or recorded.get("path")
    if recorded.get("source") == "checkpoint" and not weights_path:
        raise UsageError(f"{artifact} was exported from a checkpoint; pass --weights to check it")
    loaded = None
    if weights_path:
        loaded = load_weights(connector, weights_path, connector.config_from_dict(record["config"]), recorded.get("layer"))
        if recorded.get("digest") and loaded.digest != recorded["digest"]:
            raise UsageError(
                f"weights {weights_path} differ from those {artifact.name} was exported from "
                f"({loaded.digest[:19]} vs {recorded['digest'][:19]}); pass the original --weights"
            )
    config = loaded.config if loaded else connector.config_from_dict(record["config"])
    return connector, config, build_module(connector, config, loaded)


def check(
    artifact: str | Path,
    weights: str | Path | None = None,
    device: str = "cpu",
    tolerance: Tolerance | None = None,
    shapes: list[dict[str, int]] | None = None,
) -> tuple[dict[str, Any], ParityReport]:
    """Re-run the parity gate on an exported artifact, rebuilding the module from its manifest."""
    artifact = Path(artifact)
    record = manifest.read(artifact)
    connector, config, module = reference_module(artifact, record, weights)
    for sizes in shapes or []:
        connector.check_sizes(config, sizes)
    tolerance = tolerance or connector.tolerance_for(record.get("precision", "fp32"))
    report = run_parity(artifact, module, connector, config, tolerance, shapes, device=device)
    return record, report
