"""The parity gate: an ONNX artifact against the fp32 PyTorch module, in ONNX Runtime."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from ..connectors import Connector, Tolerance
from ..errors import UsageError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


@dataclass
class ParityRow:
    shape: dict[str, int]
    output: str
    max_abs: float
    max_rel: float
    cosine: float
    passed: bool


@dataclass
class ParityReport:
    tolerance: Tolerance
    provider: str
    rows: list[ParityRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def worst_cosine(self) -> float:
        return min(r.cosine for r in self.rows)

    @property
    def worst_rel(self) -> float:
        return max(r.max_rel for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "provider": self.provider,
            "tolerance": asdict(self.tolerance),
            "rows": [{k: _finite(v) for k, v in asdict(r).items()} for r in self.rows],
        }

    def failure(self) -> str:
        """One line saying by how much the worst row missed."""
        bad = [r for r in self.rows if not r.passed]
        worst = min(bad, key=lambda r: r.cosine)
        shape = ", ".join(f"{k}={v}" for k, v in worst.shape.items())
        limit = "not gated" if self.tolerance.max_rel is None else f"limit {self.tolerance.max_rel:.3g}"
        return (
            f"parity failed for {len(bad)} of {len(self.rows)} checks; worst: output '{worst.output}' at {shape}: "
            f"max_rel {worst.max_rel:.3g} ({limit}), cosine {worst.cosine:.7f} (limit {self.tolerance.min_cosine})"
        )


def _finite(value: Any) -> Any:
    """JSON has no Infinity/NaN: a non-finite metric is written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def compare(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float, float]:
    """(max abs error, max abs error / max |expected|, cosine similarity), in float64."""
    a = actual.astype(np.float64).ravel()
    e = expected.astype(np.float64).ravel()
    if a.shape != e.shape:
        return float("inf"), float("inf"), 0.0
    if not np.all(np.isfinite(a)):
        return float("inf"), float("inf"), 0.0
    diff = np.abs(a - e)
    max_abs = float(diff.max(initial=0.0))
    scale = float(np.abs(e).max(initial=0.0))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    norms = np.linalg.norm(a) * np.linalg.norm(e)
    cosine = float(a @ e / norms) if norms > 0 else (1.0 if max_abs == 0 else 0.0)
    return max_abs, max_rel, cosine


def session(path: Path, device: str = "cpu") -> ort.InferenceSession:
    if device not in PROVIDERS:
        raise UsageError(f"unknown device '{device}'; choose one of: {', '.join(PROVIDERS)}")
    provider = PROVIDERS[device]
    if provider not in ort.get_available_providers():
        raise UsageError(f"ONNX Runtime here has no {provider}; install onnxruntime-gpu or use --device cpu")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about fp16 constant folding on CPU; the gate's numbers are what count
    return ort.InferenceSession(str(path), options, providers=[provider])


def run_parity(
    path: Path,
    module: nn.Module,
    connector: Connector,
    config: Any,
    tolerance: Tolerance | None = None,
    shapes: list[dict[str, int]] | None = None,
    device: str = "cpu",
    samples: list[dict[str, np.ndarray]] | None = None,
) -> ParityReport:
    """Run at `shapes` (random inputs, not the export example) or on given `samples`."""
    tolerance = tolerance or connector.tolerance
    sess = session(path, device)
    report = ParityReport(tolerance=tolerance, provider=sess.get_providers()[0])
    output_names = [o.name for o in sess.get_outputs()]
    feed_types = {i.name: ORT_TYPES[i.type] for i in sess.get_inputs()}
    if samples is not None:
        cases = [{k: torch.from_numpy(np.array(v, dtype=np.float32 if v.dtype.kind == "f" else v.dtype)) for k, v in sample.items()} for sample in samples]
    else:
        cases = [connector.dummy_inputs(config, sizes, seed=1 + i) for i, sizes in enumerate(shapes or connector.parity_shapes(config))]
    for inputs in cases:
        sizes = connector.sizes_of(config, inputs)
        with torch.inference_mode():
            expected = module(*inputs.values())
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        actual = sess.run(output_names, {k: v.numpy().astype(feed_types[k]) for k, v in inputs.items()})
        for name, got, ref in zip(output_names, actual, expected):
            max_abs, max_rel, cosine = compare(got, ref.float().numpy())
            report.rows.append(ParityRow(dict(sizes), name, max_abs, max_rel, cosine, tolerance.passes(max_rel, cosine)))
    return report
