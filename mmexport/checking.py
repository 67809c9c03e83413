"""`mmexport check`: rerun an artifact's gate, whatever its kind, on the inputs it was gated on
(the held-out samples kept beside a variant), starting from its own tolerance."""

from __future__ import annotations

from pathlib import Path

from .calibration import data
from .calibration import heldout as heldout_file
from .errors import UsageError
from .parity import Case, OrtRunner, ParityReport, cases_from_samples, deriving, run_gate
from .rebuild import reference_of
from .record import ArtifactRecord, read
from .reference import Reference
from .specs import Limits, Tolerance

# fp32 engines may run matmuls in TF32 on Ampere and newer: a looser gate than ONNX Runtime's.
ENGINE_FP32_TOLERANCE = Tolerance(max_rel=2e-3, min_cosine=0.9999)


def base_tolerance(record: ArtifactRecord, ref: Reference) -> Tolerance:
    if record.kind == "engine" and record.precision == "fp32":
        return ENGINE_FP32_TOLERANCE
    return record.tolerance or ref.connector.tolerance


def _cases(artifact: Path, record: ArtifactRecord, ref: Reference, shapes, inputs) -> tuple[list[Case], str]:
    if shapes:
        return ref.cases(shapes), "random inputs at the given shapes"
    if inputs:
        samples = data.load(ref.connector, ref.config, inputs, max_samples=64, min_samples=1).samples
        if record.grid is not None:  # a grid that cannot be is refused before transformers sees it
            for sample in samples:
                record.grid(sample)
        return cases_from_samples(ref.connector, ref.config, samples), f"samples from {Path(inputs).name}"
    if record.heldout:
        samples = heldout_file.read(artifact.parent, record.heldout)
        return cases_from_samples(ref.connector, ref.config, samples), "held-out calibration samples"
    return ref.cases(), "random inputs at the parity shapes"


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
    ref = reference_of(artifact, record, weights)
    tolerance = base_tolerance(record, ref).override(limits)
    cases, label = _cases(artifact, record, ref, shapes, inputs)
    if runner is not None:
        graph = (lambda feeds: record.grid(feeds)) if record.grid is not None else (lambda feeds: feeds)
        cases = [c for c in cases if runner.fits({k: tuple(v.shape) for k, v in graph(c.feeds).items()})]
        if not cases:
            raise UsageError(f"no parity case fits {artifact.name}'s profiles; pass --shape sizes within them")
    candidate = deriving(runner or OrtRunner(artifact, device), record)
    return record, run_gate(candidate, ref.runner(), cases, tolerance, label)
