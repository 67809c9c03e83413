"""The one parity engine: a candidate runner against a reference runner on named cases.
The export gate, `check` on every artifact kind, the variant gates and bench all use it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import MmexportError, UsageError
from ..specs import Tolerance
from .metrics import compare
from .report import ParityReport, ParityRow
from .runners import Feeds, Runner


@dataclass
class Case:
    """One set of inputs; the reference's outputs are computed once and kept (a search
    gates many candidates on the same cases)."""

    sizes: dict[str, int]
    feeds: Feeds
    expected: dict[str, np.ndarray] | None = None


def _check_signatures(candidate: Runner, reference: Runner) -> None:
    if sorted(candidate.input_names) != sorted(reference.input_names):
        raise MmexportError(
            f"the artifact's inputs ({', '.join(candidate.input_names)}) are not the reference's ({', '.join(reference.input_names)}); re-export it"
        )
    if candidate.output_names != reference.output_names:
        raise MmexportError(
            f"the artifact's outputs ({', '.join(candidate.output_names)}) are not the reference's ({', '.join(reference.output_names)}); re-export it"
        )


def run_gate(
    candidate: Runner, reference: Runner, cases: Sequence[Case], tolerance: Tolerance, inputs: str = "random inputs at the parity shapes"
) -> ParityReport:
    """Compare every output on every case; an empty comparison is an error, never a pass."""
    if not cases:
        raise UsageError("no parity case to run (no shape fits the artifact); pass --shape within its ranges")
    _check_signatures(candidate, reference)
    report = ParityReport(tolerance=tolerance, provider=candidate.description, reference=f"fp32 {reference.description}", inputs=inputs)
    for case in cases:
        if case.expected is None:
            case.expected = reference.run(case.feeds)
        actual = candidate.run(case.feeds)
        missing = [name for name in reference.output_names if name not in actual]
        if missing:
            raise MmexportError(f"{candidate.description} returned no output '{missing[0]}'")
        rows = [ParityRow.of(case.sizes, name, compare(actual[name], case.expected[name]), tolerance) for name in reference.output_names]
        _judge_by_float64(reference, case, actual, rows, tolerance)
        report.rows.extend(rows)
    return report


def _judge_by_float64(reference: Runner, case: Case, actual: dict[str, np.ndarray], rows: list[ParityRow], tolerance: Tolerance) -> None:
    """Rows that miss only max_rel are judged against the original run in float64, where it can
    run so: a large random model's fp32 rounding alone can exceed 1e-4 (see ParityRow.judge_by_float64)."""
    missed = [row for row in rows if tolerance.float64_floor and row.misses_only_max_rel(tolerance)]
    run_float64 = getattr(reference, "run_float64", None)
    if not missed or run_float64 is None or case.expected is None:
        return
    truth = run_float64(case.feeds)
    if truth is None:
        return
    for row in missed:
        own = compare(case.expected[row.output], truth[row.output]).max_rel
        row.judge_by_float64(compare(actual[row.output], truth[row.output]).max_rel, own, tolerance)
