"""The result of a parity gate: one row per output and case, the tolerance it was held to."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..specs import Tolerance
from .metrics import Metrics

NOISE_FACTOR = 2.0  # judged against float64, an export may be off by twice what the original's own fp32 run is


@dataclass
class ParityRow:
    shape: dict[str, int]
    output: str
    max_abs: float
    max_rel: float
    cosine: float
    token_cosine_p1: float
    passed: bool
    float64_max_rel: float | None = None  # judged against float64: the candidate's max rel there
    reference_float64_max_rel: float | None = None  # and the original's own fp32 run's (its rounding noise)

    @classmethod
    def of(cls, shape: dict[str, int], output: str, metrics: Metrics, tolerance: Tolerance) -> "ParityRow":
        passed = tolerance.passes(metrics.max_rel, metrics.cosine, metrics.token_cosine_p1)
        return cls(dict(shape), output, metrics.max_abs, metrics.max_rel, metrics.cosine, metrics.token_cosine_p1, passed)

    def misses_only_max_rel(self, tolerance: Tolerance) -> bool:
        return not self.passed and Tolerance(None, tolerance.min_cosine, tolerance.min_token_cosine).passes(0.0, self.cosine, self.token_cosine_p1)

    def judge_by_float64(self, candidate_rel: float, reference_rel: float, tolerance: Tolerance) -> None:
        """Where the original's own fp32 run is further from its float64 run than the limit, an fp32
        export cannot match it closer than rounding allows: judge both against float64 instead."""
        self.float64_max_rel, self.reference_float64_max_rel = candidate_rel, reference_rel
        self.passed = candidate_rel <= max(tolerance.max_rel or 0.0, NOISE_FACTOR * reference_rel)

    def describe_float64(self) -> str:
        if self.float64_max_rel is None or self.reference_float64_max_rel is None:
            return ""
        return (
            f"; against float64 the export's max_rel is {self.float64_max_rel:.3g} and the original's own fp32 run's "
            f"{self.reference_float64_max_rel:.3g} (limit {NOISE_FACTOR:g}x that)"
        )


@dataclass
class ParityReport:
    tolerance: Tolerance
    provider: str  # what ran the candidate (ONNX Runtime provider, TensorRT flavor)
    reference: str = "fp32 PyTorch"
    inputs: str = "random inputs at the parity shapes"
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

    @property
    def worst_token_cosine(self) -> float:
        return min(r.token_cosine_p1 for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "provider": self.provider,
            "reference": self.reference,
            "inputs": self.inputs,
            "tolerance": self.tolerance.to_json(),
            "rows": [{k: _finite(v) for k, v in asdict(r).items()} for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ParityReport":
        rows = []
        for row in data.get("rows", []):
            values: dict[str, Any] = {k: (float("inf") if v is None else v) for k, v in row.items()}  # null: a non-finite metric
            rows.append(ParityRow(**values))
        return cls(Tolerance.from_json(data["tolerance"]), data["provider"], data.get("reference", ""), data.get("inputs", ""), rows)

    def failure(self) -> str:
        """One line saying by how much the worst row missed."""
        bad = [r for r in self.rows if not r.passed]
        if not bad:
            return "parity passed"
        worst = min(bad, key=lambda r: (r.cosine, r.token_cosine_p1))
        shape = ", ".join(f"{k}={v}" for k, v in worst.shape.items())
        tol = self.tolerance
        limit = "not gated" if tol.max_rel is None else f"limit {tol.max_rel:.3g}"
        token = "not gated" if tol.min_token_cosine is None else f"limit {tol.min_token_cosine}"
        return (
            f"parity failed for {len(bad)} of {len(self.rows)} checks; worst: output '{worst.output}' at {shape}: "
            f"max_rel {worst.max_rel:.3g} ({limit}), cosine {worst.cosine:.7f} (limit {tol.min_cosine}), "
            f"token cosine p1 {worst.token_cosine_p1:.5f} ({token}){worst.describe_float64()}"
        )


def _finite(value: Any) -> Any:
    """JSON has no Infinity/NaN: a non-finite metric is written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
