"""`mmexport onnx` as a function: resolve, export, gate, install with the artifact record."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..artifacts import Staging
from ..errors import MmexportError, ParityError, UsageError
from ..parity import DerivedRunner, OrtRunner, ParityReport, run_gate
from ..record import ArtifactRecord, file_sha256, record_path
from ..specs import Limits, Tolerance
from ..subjects import Subject, resolve
from .torch_to_onnx import DEFAULT_OPSET, export_module

Step = Callable[[str], None]


@dataclass
class ExportResult:
    path: Path
    record: ArtifactRecord
    parity: ParityReport | None
    subject: Subject
    seconds: float
    warnings: list[str] = field(default_factory=list)


def default_output(connector: str, preset: str) -> Path:
    return Path(f"{connector}-{preset}.onnx")


def export(
    connector_name: str | None = None,
    preset: str | None = None,
    weights: str | Path | None = None,
    output: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    device: str = "cpu",
    limits: Limits | None = None,
    shapes: list[dict[str, int]] | None = None,
    step: Step = lambda message: None,
    layer: int | None = None,
    subject: Subject | None = None,
) -> ExportResult:
    """Export a connector to ONNX, gate it on parity, and install it with its record.
    A failed gate raises ParityError and leaves the files in OUTPUT.failed/ for inspection."""
    start = time.perf_counter()
    step("loading weights" if weights else "building the module")
    if subject is None and connector_name is None:
        raise UsageError("give a connector name (or a Hugging Face folder through mmexport.make / --model)")
    ref = subject or resolve(str(connector_name), preset, weights, layer)
    output = Path(output) if output else default_output(ref.name, ref.preset)
    if output.suffix != ".onnx":
        raise UsageError(f"output must end in .onnx: {output}")
    cases = ref.cases(shapes)  # bad --shape values fail here, before any work
    with Staging(output) as staging:
        step(f"exporting to ONNX (opset {opset})")
        external = _export(ref, staging.path(), opset)
        report = None
        tolerance = ref.tolerance.override(limits)
        if check:
            step("checking parity in ONNX Runtime")
            report = _gate(ref, staging.path(), device, cases, tolerance)
        record = _record(ref, output, staging.path(), opset, external, tolerance, report)
        record.write(staging.path(record_path(output).name))
        if report is not None and not report.passed:
            kept = staging.keep_as(output.with_suffix(".failed"))
            raise ParityError(f"{report.failure()}; nothing installed, files kept in {kept}/")
        staging.commit(([output.name + ".data"] if external else []) + [output.name, record_path(output).name])
    return ExportResult(output, record, report, ref, time.perf_counter() - start, list(ref.warnings))


def _export(ref: Subject, path: Path, opset: int) -> bool:
    """The graph takes what the derivation makes of the example (the example itself where nothing is derived)."""
    example = {k: torch.from_numpy(v) for k, v in ref.derivation({k: t.numpy() for k, t in ref.example().items()}).items()}
    try:
        return export_module(ref.exported, list(ref.derivation.inputs), ref.outputs, example, path, opset, ref.name)
    except MmexportError as exc:
        section = getattr(ref, "model", None)
        if section is None or section.declared:
            raise
        raise type(exc)(
            f"model_type '{section.model_type}' has no declaration, and transformers' own path does not export: {exc}; declare its family (README)"
        ) from exc


def _gate(ref: Subject, path: Path, device: str, cases: list, tolerance: Tolerance) -> ParityReport:
    try:
        return run_gate(_candidate(ref, path, device), ref.runner(), cases, tolerance, ref.gate_inputs)
    except MmexportError:
        raise
    except Exception as exc:  # ONNX Runtime's own errors: a graph transformers' path gave, which it cannot run
        section = getattr(ref, "model", None)
        if section is None or section.declared:
            raise
        cause = (str(exc).splitlines() or [type(exc).__name__])[0][:240]
        raise MmexportError(
            f"model_type '{section.model_type}' has no declaration, and the graph of transformers' own path does not run in ONNX Runtime ({cause}); declare its family (README)"
        ) from exc


def _candidate(ref: Subject, path: Path, device: str) -> DerivedRunner:
    return DerivedRunner(OrtRunner(path, device), ref.derivation, [s.name for s in ref.inputs])


def _record(ref: Subject, output: Path, staged: Path, opset: int, external: bool, tolerance: Tolerance, report: ParityReport | None) -> ArtifactRecord:
    return ArtifactRecord(
        kind="onnx",
        artifact=output.name,
        connector=ref.name,
        preset=ref.preset,
        config=dataclasses.asdict(ref.config),
        weights=ref.weights_record(),
        inputs=ref.inputs,
        outputs=ref.outputs,
        opset=opset,
        external_data=output.name + ".data" if external else None,
        sha256=file_sha256(staged),
        tolerance=tolerance,
        parity=report.to_json() if report else None,
        model=ref.model,
        derived=ref.derivation.recorded,
        warnings=list(ref.warnings),
    )
