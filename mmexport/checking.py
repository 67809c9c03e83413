"""`mmexport check`: rerun an artifact's gate, whatever its kind, on the inputs it was gated on
(the held-out samples kept beside a variant), starting from its own tolerance."""

from __future__ import annotations

from pathlib import Path

from .calibration import data
from .calibration import heldout as heldout_file
from .errors import UsageError
from .parity import Case, OrtRunner, ParityReport, deriving, run_gate
from .rebuild import subject_of
from .record import ArtifactRecord, read, reading
from .specs import Limits, Tolerance
from .subjects import Subject

# fp32 engines may run matmuls in TF32 on Ampere and newer: a looser gate than ONNX Runtime's.
ENGINE_FP32_TOLERANCE = Tolerance(max_rel=2e-3, min_cosine=0.9999)


def base_tolerance(record: ArtifactRecord, ref: Subject) -> Tolerance:
    if record.kind == "engine" and record.precision == "fp32":
        return ENGINE_FP32_TOLERANCE
    return record.tolerance or ref.tolerance


def _cases(artifact: Path, record: ArtifactRecord, ref: Subject, shapes, inputs) -> tuple[list[Case], str]:
    if shapes:
        return ref.cases(shapes), "random inputs at the given shapes"
    if inputs:
        samples = data.load(ref.inputs, inputs, max_samples=64, min_samples=1).samples
        for sample in samples:  # inputs that cannot be are refused before transformers sees them
            record.derivation(sample)
        return ref.cases_from(samples), f"samples from {Path(inputs).name}"
    if record.heldout:
        return ref.cases_from(heldout_file.read(artifact.parent, record.heldout)), "held-out calibration samples"
    return ref.cases(), ref.gate_inputs


def check(
    artifact: str | Path,
    weights: str | Path | None = None,
    device: str = "cpu",
    limits: Limits | None = None,
    shapes: list[dict[str, int]] | None = None,
    inputs: str | Path | None = None,
) -> tuple[ArtifactRecord, ParityReport]:
    """The artifact against the fp32 PyTorch module rebuilt from its record: ONNX in ONNX
    Runtime, engines with TensorRT on a GPU. Limits given override only themselves."""
    artifact = Path(artifact)
    record = read(artifact)
    runner = None
    if record.kind == "engine":
        from .engines.runner import EngineRunner

        runner = EngineRunner(artifact, record)  # no GPU: one line, before any work
    ref = subject_of(artifact, record, weights)
    tolerance = base_tolerance(record, ref).override(limits)
    cases, label = _cases(artifact, record, ref, shapes, inputs)
    if runner is not None:
        cases = [c for c in cases if runner.fits({k: tuple(v.shape) for k, v in record.derivation(c.feeds).items()})]
        if not cases:
            raise UsageError(f"no parity case fits {artifact.name}'s profiles; pass --shape sizes within them")
    with reading(artifact, record):
        candidate = deriving(runner or OrtRunner(artifact, device), record)
    return record, run_gate(candidate, ref.runner(), cases, tolerance, label)
