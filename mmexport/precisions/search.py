"""The calibration search shared by the Q/DQ precisions (int8, fp8): SmoothQuant alpha and
range method first, then a higher-precision fallback ranked by each layer's measured effect
on the output. Candidates are scored on search samples; the first that passes there is put
to the gate (held-out samples), and the search stops at the first that passes the gate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import onnx

from ..memory import release
from ..parity import ParityReport
from ..specs import Tolerance
from . import qdq, ranges
from .base import Made, VariantJob
from .fp16_graph import to_fp16
from .fp16_measure import keep_fp32, summary
from .graph import weight_macs, weighted_nodes
from .smoothquant import smooth

MAX_MEASURED = 12  # layers whose end-to-end effect is measured (one graph build and score each)
HISTOGRAM_SAMPLES = 16  # the shape of |x| settles long before its maximum (taken from every sample)
MAX_KEPT_SHARE = 0.5  # of weight MACs: past this, low precision no longer pays; refuse instead
ALTERNATIVES = {
    "int8": "--precision fp8 (Ada, Hopper, Blackwell) or fp16",
    "fp8": "--precision int8 (its finer steps suit deep attention stacks without huge outliers) or fp16",
}


def shortfall(report: ParityReport, tolerance: Tolerance) -> float:
    """How far the worst case is from passing, in units of each limit's distance to 1
    (<= 0: passes). Comparable across candidates, whichever limit binds."""
    gaps = [(tolerance.min_cosine - report.worst_cosine) / max(1 - tolerance.min_cosine, 1e-12)]
    if tolerance.min_token_cosine is not None:
        gaps.append((tolerance.min_token_cosine - report.worst_token_cosine) / max(1 - tolerance.min_token_cosine, 1e-12))
    if tolerance.max_rel is not None:
        gaps.append(report.worst_rel / tolerance.max_rel - 1)
    return max(gaps)


@dataclass
class Base:
    """One SmoothQuant alpha: the range of each quantizable input after smoothing. The smoothed
    graph itself is made again when needed (a copy of a 1.3 GB tower per alpha adds up)."""

    alpha: float
    amax: dict[str, float]
    histograms: dict[str, ranges.Histogram] | None = None


@dataclass
class Candidate:
    base: Base
    method: str
    kept: dict[str, str]  # node -> why it stays in higher precision
    model: onnx.ModelProto  # fp32 around the quantized layers until finished
    score: ParityReport
    finished: bool = False

    def summary(self, tolerance: Tolerance) -> dict[str, Any]:
        return {
            "smooth_alpha": self.base.alpha or None,
            "method": self.method,
            "kept": len(self.kept),
            "cosine": round(self.score.worst_cosine, 6),
            "token_cosine_p1": round(self.score.worst_token_cosine, 5),
            "passed": self.score.passed,
        }


class Search:
    def __init__(self, job: VariantJob, fmt: qdq.QuantFormat, methods: list[str], alphas: list[float]):
        self.job, self.fmt, self.methods, self.alphas = job, fmt, methods, alphas
        source = job.load_source()  # read again for each candidate, not kept: a tower is ~1 GB
        self.nodes = weighted_nodes(source)
        self.macs = {n.name: weight_macs(source, n) for n in self.nodes}
        axes = {n.input[0]: (1 if n.op_type == "Conv" else -1) for n in self.nodes}
        job.step(f"measuring activation ranges on {len(job.fit)} samples")
        self.stats = ranges.activation_stats(source, axes, job.fit)
        # fp16 surroundings (TensorRT) keep in fp32 what would overflow or round too coarsely there
        self.fp32_nodes = keep_fp32(source, job.fit) if job.high_precision == "fp16" else {}
        del source
        release()
        self.channel_amax = self.stats.channel_amax
        self.tried: list[dict[str, Any]] = []  # summaries only: graphs are dropped as the search moves on

    def smoothed(self, alpha: float) -> tuple[onnx.ModelProto, dict[str, float]]:
        """A fresh copy of the graph with SmoothQuant folded in, and its smoothed inputs' new ranges."""
        model = self.job.load_source()
        return model, (smooth(model, self.channel_amax, alpha) if alpha else {})

    def base(self, alpha: float) -> Base:
        model, smoothed = self.smoothed(alpha)
        amax = {n.input[0]: smoothed[n.input[0]] if n.input[0] in smoothed else float(self.channel_amax[n.input[0]].max()) for n in weighted_nodes(model)}
        return Base(alpha, amax)

    def ranges_for(self, base: Base, method: str) -> dict[str, float]:
        if method == "minmax":
            return dict(base.amax)
        if base.histograms is None:
            self.job.step(f"histograms of {len(base.amax)} activations")
            base.histograms = ranges.histograms(self.smoothed(base.alpha)[0], base.amax, self.job.fit[:HISTOGRAM_SAMPLES])
        pct = self.job.options.percentile
        return {name: ranges.choose_amax(h, method, self.fmt.levels, pct) for name, h in base.histograms.items()}

    def finish(self, candidate: Candidate) -> onnx.ModelProto:
        """The surroundings: fp16 for TensorRT, fp32 for ONNX Runtime's CPU provider."""
        if not candidate.finished and self.job.high_precision == "fp16":
            candidate.model = to_fp16(candidate.model, self.job.options.io == "fp16", keep_fp32_nodes=list(self.fp32_nodes))
        candidate.finished = True
        return candidate.model

    def candidate(self, base: Base, method: str, kept: dict[str, str]) -> Candidate:
        """Scored with fp32 around the quantized layers: fast on this CPU, and the surroundings'
        own rounding is small next to int8/fp8's; the gate then judges the finished graph."""
        self.job.step(f"{self.fmt.name}: alpha {base.alpha or 'off'}, {method} ranges, {len(kept)} layers kept in {self.job.high_precision}")
        activation_ranges = self.ranges_for(base, method)
        model, _ = self.smoothed(base.alpha)
        qdq.insert(model, [n for n in weighted_nodes(model) if n.name not in kept], activation_ranges, self.fmt)
        found = Candidate(base, method, kept, model, self.job.score(model))
        self.tried.append(found.summary(self.job.tolerance))
        release()  # the smoothed copy and the scoring session are gone
        return found

    def accept(self, candidate: Candidate) -> ParityReport | None:
        """The gate's report when the candidate passes the search samples and then the gate."""
        if not candidate.score.passed:
            return None
        report = self.job.gate(self.finish(candidate))
        return report if report.passed else None

    def run(self) -> Made:
        best: Candidate | None = None
        for alpha in self.alphas:
            base = self.base(alpha)
            for method in self.methods:
                found = self.candidate(base, method, {})
                if (report := self.accept(found)) is not None:
                    return self.made(found, report)
                if best is None or self.worse(best, found):
                    best = found
        assert best is not None
        return self.fall_back(best)

    def worse(self, a: Candidate, b: Candidate) -> bool:
        return shortfall(a.score, self.job.tolerance) > shortfall(b.score, self.job.tolerance)

    def fall_back(self, best: Candidate) -> Made:
        """Keep layers in higher precision, most helpful first (1, 2, 4, ...), within MAX_KEPT_SHARE."""
        macs = self.macs
        total, budget = sum(macs.values()) or 1, 0
        eligible: list[tuple[str, str]] = []
        for name, before, after in self.rank_by_effect(best):
            if (budget + macs[name]) / total > MAX_KEPT_SHARE:
                continue
            budget += macs[name]
            eligible.append(
                (
                    name,
                    (
                        f"kept in {self.job.high_precision}: quantizing every layer but this one scores cosine "
                        f"{after[0]:.6f} / token p1 {after[1]:.5f} on the search samples, against {before[0]:.6f} / {before[1]:.5f}"
                    ),
                )
            )
        sizes = [n for n in (1, 2, 4, 8, 16, 32, 64) if n < len(eligible)] + [len(eligible)] if eligible else []
        for size in sizes:  # keep 1, 2, 4 ... of the most helpful layers, then all that fit
            found = self.candidate(best.base, best.method, dict(best.kept) | dict(eligible[:size]))
            if (report := self.accept(found)) is not None:
                return self.made(found, report)
            best = found if self.worse(best, found) else best
        return self.refuse(best)

    def suspects(self) -> list[onnx.NodeProto]:
        """The layers worth measuring: all of them in a small graph; in a large one (a vision
        tower has ~150) the MAX_MEASURED whose inputs spread widest, by channel or by token."""
        if len(self.nodes) <= MAX_MEASURED:
            return list(self.nodes)

        def spread(node: onnx.NodeProto) -> float:
            name = node.input[0]
            return max(self.stats.channel_spread(name), self.stats.token_spread.get(name, 1.0))

        return sorted(self.nodes, key=spread, reverse=True)[:MAX_MEASURED]

    def rank_by_effect(self, best: Candidate) -> list[tuple[str, tuple[float, float], tuple[float, float]]]:
        """Each layer's end-to-end effect: the search score with only it left unquantized."""
        suspects = self.suspects()
        self.job.step(f"ranking {len(suspects)} of {len(self.nodes)} layers by their effect on the output")
        before = (best.score.worst_cosine, best.score.worst_token_cosine)
        effects = []
        for node in suspects:
            trial = self.candidate(best.base, best.method, dict(best.kept) | {node.name: "ranking"})
            self.tried.pop()  # a measurement, not a candidate
            effects.append((shortfall(trial.score, self.job.tolerance), node.name, (trial.score.worst_cosine, trial.score.worst_token_cosine)))
        effects.sort()
        return [(name, before, after) for _, name, after in effects if name not in best.kept]

    def details(self, chosen: Candidate) -> dict[str, Any]:
        total = sum(self.macs.values()) or 1
        low = sum(m for name, m in self.macs.items() if name not in chosen.kept)
        return {
            "format": self.fmt.name,
            "weight_max": self.fmt.weight_limit,
            "method": chosen.method,
            "percentile": self.job.options.percentile if chosen.method == "percentile" else None,
            "smooth_alpha": chosen.base.alpha or None,
            "high_precision": self.job.high_precision,
            "quantized_layers": len(self.nodes) - len(chosen.kept),
            "quantized_mac_share": round(low / total, 4),
            "kept": chosen.kept,
            "placement": "Q/DQ on the activation and weight inputs of weighted MatMul/Gemm/Conv only",
            "kept_fp32": summary(self.fp32_nodes) if self.fp32_nodes else None,
            "search": self.tried,
        }

    def made(self, chosen: Candidate, report: ParityReport) -> Made:
        details = self.details(chosen) | {"chosen": "the first candidate that passed on the search samples and then the gate"}
        return Made(chosen.model, report, details)

    def refuse(self, best: Candidate) -> Made:
        report = self.job.gate(self.finish(best))
        return Made(best.model, report, self.details(best) | {"chosen": None}, refusal=self.cause(best, report))

    def cause(self, best: Candidate, report: ParityReport) -> str:
        """One line: by how much the best candidate missed, and why one scale per tensor cannot do it."""
        head = f"{self.fmt.name} found no variant that passes: the best one {report.failure()}"
        tokens = max(self.stats.token_spread.items(), key=lambda item: item[1])
        channels = max(((name, self.stats.channel_spread(name)) for name in self.channel_amax), key=lambda item: item[1])
        if tokens[1] >= channels[1]:
            why = f"in '{tokens[0]}' the largest token reaches {tokens[1]:.0f}x the median token's |x|: one per-tensor scale leaves the other tokens few levels"
        else:
            why = (
                f"in '{channels[0]}' the largest channel reaches {channels[1]:.0f}x the median channel's |x|, more than SmoothQuant could move into the weights"
            )
        return f"{head}; {why}; try {ALTERNATIVES[self.fmt.name]}"


def searching(fmt: qdq.QuantFormat, methods: tuple[str, ...], alphas: tuple[float, ...]) -> Callable[[VariantJob], Made]:
    """A precision's make(): the search over these range methods and SmoothQuant strengths,
    or over the one method / strength the user gave."""

    def make(job: VariantJob) -> Made:
        tried_methods = [job.options.method] if job.options.method else list(methods)
        tried_alphas = [job.options.smooth] if job.options.smooth is not None else list(alphas)
        return Search(job, fmt.on(job.options.target), tried_methods, tried_alphas).run()

    return make
