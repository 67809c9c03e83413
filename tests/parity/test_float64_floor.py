"""Where the original's own fp32 rounding exceeds max_rel, the gate judges against its float64 run."""

import numpy as np
import torch
from torch import nn

from mmexport.parity import Case, Expected, TorchRunner, run_gate
from mmexport.specs import Limits, Tolerance


class Cancelling(nn.Module):
    """(x + 1e4) - 1e4: fp32 keeps ~1e-3 of x's precision, float64 all of it."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offset", torch.tensor(1e4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.offset) - self.offset


class Exact:
    """A candidate computing x without the cancellation (what a fused graph may do)."""

    description = "exact"
    input_names = ["x"]
    output_names = ["y"]

    def __init__(self, noise: float = 0.0):
        self.noise = noise

    def run(self, feeds):
        x = feeds["x"].astype(np.float64)
        return {"y": x + self.noise * np.random.default_rng(1).standard_normal(x.shape)}


def _case() -> Case:
    return Case({"tokens": 64}, {"x": np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)})


def test_a_candidate_as_close_to_float64_as_the_original_passes():
    reference = TorchRunner(Cancelling(), ["x"], ["y"])
    report = run_gate(Exact(), reference, [_case()], Tolerance())
    row = report.rows[0]
    assert row.max_rel > 1e-4  # against the fp32 original it misses the limit
    assert report.passed and row.float64_max_rel is not None and row.float64_max_rel < 1e-9
    assert row.reference_float64_max_rel is not None and row.reference_float64_max_rel > 1e-4
    assert reference.module.offset.dtype == torch.float32


def test_a_candidate_further_than_the_originals_rounding_fails_and_says_both():
    report = run_gate(Exact(noise=0.05), TorchRunner(Cancelling(), ["x"], ["y"]), [_case()], Tolerance(min_cosine=0.99))
    assert not report.passed
    assert "against float64" in report.failure() and "original's own fp32 run" in report.failure()


def test_an_explicit_max_rel_and_a_reference_without_a_float64_run_are_held_as_given():
    explicit = Tolerance().override(Limits(max_rel=1e-4))
    assert not run_gate(Exact(), TorchRunner(Cancelling(), ["x"], ["y"]), [_case()], explicit).passed
    case = _case()
    case.expected = TorchRunner(Cancelling(), ["x"], ["y"]).run(case.feeds)
    report = run_gate(Exact(), Expected(["x"], ["y"]), [case], Tolerance())
    assert not report.passed and report.rows[0].float64_max_rel is None
