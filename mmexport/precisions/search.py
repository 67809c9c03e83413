"""The calibration search shared by the Q/DQ precisions (int8, fp8). First every layer in low
precision: SmoothQuant strengths with min-max ranges, stopping along the strengths once a
stronger one scores worse, then the clipping range methods at the best strength only (their
histograms cost a pass of the graph each); then, if none passes, the layers ranked once by
their measured effect on the output, and the most helpful kept in higher precision (1, 2, 4 ...).
Candidates are scored on the first few search samples, and on all of them where they pass
there; the first that passes them all is put to the gate (held-out samples), and the search
stops at the first that passes the gate. The record lists
every candidate, and every one skipped with why."""

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
from .fp16_measure import float_tensors, keep_fp32_measured, summary
from .graph import weight_macs, weighted_nodes
from .smoothquant import smooth

MAX_MEASURED = 12  # layers whose end-to-end effect is measured (one graph build and score each)
HISTOGRAM_SAMPLES = 16  # the shape of |x| settles long before its maximum (taken from every sample)
MAX_KEPT_SHARE = 0.5  # of weight MACs: past this, low precision no longer pays; refuse instead
KEPT_IN_MEMORY = 512 << 20  # a graph this small keeps its smoothed copies and quantized weights between candidates


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
    gate: ParityReport | None = None  # the gate's verdict, once put to it

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
    ranged = True  # some quantized layer uses a calibrated activation range (clipping methods apply)

    def __init__(self, job: VariantJob, fmt: qdq.QuantFormat, methods: list[str], alphas: list[float], alternatives: str = "--precision fp16"):
        self.job, self.fmt, self.methods, self.alphas, self.alternatives = job, fmt, methods, alphas, alternatives
        source = job.load_source()  # read again for each candidate, not kept: a tower is ~1 GB
        self.small = sum(t.ByteSize() for t in source.graph.initializer) < KEPT_IN_MEMORY
        self._smoothed: dict[float, tuple[onnx.ModelProto, dict[str, float]]] = {}
        self._weights: dict[float, dict] = {}  # quantized weights per smoothing strength (the same for every candidate there)
        self.nodes = weighted_nodes(source)
        self.ranged = any(not fmt.is_dynamic(n) for n in self.nodes)  # False: every activation takes its range per call
        self.macs = {n.name: weight_macs(source, n) for n in self.nodes}
        axes = {n.input[0]: (1 if n.op_type == "Conv" else -1) for n in self.nodes}
        job.step(f"measuring activation ranges on {len(job.fit)} samples")
        # fp16 surroundings (TensorRT) keep in fp32 what would overflow or round too coarsely there: measured in the same pass
        fp16 = job.high_precision == "fp16"
        self.stats, top = ranges.activation_stats(source, axes, job.fit, float_tensors(source) if fp16 else ())
        self.fp32_nodes = keep_fp32_measured(source, top) if fp16 else {}
        del source
        release()
        self.channel_amax = self.stats.channel_amax
        self.tried: list[dict[str, Any]] = []  # summaries only: graphs are dropped as the search moves on

    def smoothed(self, alpha: float) -> tuple[onnx.ModelProto, dict[str, float]]:
        """A fresh copy of the graph with SmoothQuant folded in, and its smoothed inputs' new ranges
        (a small graph's smoothed form is kept and copied; a tower's is made again from disk)."""
        if alpha in self._smoothed:
            kept, ranges_ = self._smoothed[alpha]
            copy = onnx.ModelProto()
            copy.CopyFrom(kept)
            return copy, ranges_
        model = self.job.load_source()
        found = smooth(model, self.channel_amax, alpha) if alpha else {}
        if self.small:
            self._smoothed[alpha] = (model, found)
            return self.smoothed(alpha)
        return model, found

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

    def candidate(self, base: Base, method: str, kept: dict[str, str], ranking: bool = False) -> Candidate:
        """Scored with fp32 around the quantized layers: fast on this CPU, and the surroundings'
        own rounding is small next to int8/fp8's; the gate then judges the finished graph."""
        self.job.step(f"{self.fmt.name}: alpha {base.alpha or 'off'}, {method} ranges, {len(kept)} layers kept in {self.job.high_precision}")
        activation_ranges = self.ranges_for(base, method)
        model, _ = self.smoothed(base.alpha)
        weights = self._weights.setdefault(base.alpha, {}) if self.small else None
        qdq.insert(model, [n for n in weighted_nodes(model) if n.name not in kept], activation_ranges, self.fmt, weights)
        found = Candidate(base, method, kept, model, self.scored(model, ranking))
        if not ranking:
            self.tried.append(found.summary(self.job.tolerance))
        if not self.small:
            release()  # the smoothed copy of a tower and its scoring session are gone
        return found

    def scored(self, model: onnx.ModelProto, ranking: bool) -> ParityReport:
        """On the first few search samples; on all of them only where it passed there (a failure
        on some samples is a failure on all: every limit holds for the worst sample)."""
        first = (self.job.rank or self.job.score)(model)
        return first if ranking or not first.passed or self.job.rank is None else self.job.score(model)

    def accept(self, candidate: Candidate) -> ParityReport | None:
        """The gate's report when the candidate passes the search samples and then the gate."""
        if not candidate.score.passed:
            return None
        report = self.job.gate(self.finish(candidate))
        candidate.gate = report
        return report if report.passed else None

    def run(self) -> Made:
        best = self.sweep()
        if best.gate is not None and best.gate.passed:
            return self.made(best, best.gate)
        return self.fall_back(best)

    def sweep(self) -> Candidate:
        """Every layer in low precision: the candidate that passed the gate, else the best one."""
        first, *others = self.methods
        best = self.along_strengths(first)
        for method in others:  # clipping methods at the best strength only
            if best.gate is not None and best.gate.passed:
                return best
            if not self.ranged:
                self.skip_others(method, None, "every quantized layer takes its activation's range per call (--target cpu): no range to clip")
                continue
            self.skip_others(method, best.base.alpha, f"clipping ranges are tried at the best smoothing strength only (alpha {best.base.alpha or 'off'})")
            found = self.candidate(best.base, method, {})
            self.accept(found)
            best = found if found.gate is not None and found.gate.passed else self.better(best, found)
        return best

    def along_strengths(self, method: str) -> Candidate:
        """Smoothing strengths in the declared order; once a stronger one scores worse than the one
        before it, the stronger ones after it are skipped ('off' is still tried)."""
        best: Candidate | None = None
        previous: Candidate | None = None
        ended = False
        for alpha in self.alphas:
            stronger = previous is not None and bool(alpha) and bool(previous.base.alpha) and alpha > previous.base.alpha
            if stronger and ended:
                self.skipped(alpha, method, "a weaker strength already scored better than the one after it")
                continue
            found = self.candidate(self.base(alpha), method, {})
            if self.accept(found) is not None:
                return found
            ended = ended or (stronger and previous is not None and self.worse(found, previous))
            best = self.better(best, found)
            previous = found
        assert best is not None
        return best

    def skip_others(self, method: str, chosen: float | None, why: str) -> None:
        for alpha in self.alphas:
            if alpha != chosen:
                self.skipped(alpha, method, why)

    def skipped(self, alpha: float, method: str, why: str) -> None:
        self.tried.append({"smooth_alpha": alpha or None, "method": method, "kept": 0, "skipped": why})

    def better(self, a: Candidate | None, b: Candidate) -> Candidate:
        return b if a is None or self.worse(a, b) else a

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
            trial = self.candidate(best.base, best.method, dict(best.kept) | {node.name: "ranking"}, ranking=True)  # a measurement, not a candidate
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
            "placement": self.placement(),
            "kept_fp32": summary(self.fp32_nodes) if self.fp32_nodes else None,
            "search": self.tried,
        }

    def placement(self) -> str:
        if not self.fmt.dynamic:
            return "Q/DQ on the activation and weight inputs of weighted MatMul/Gemm/Conv only"
        return "MatMul/Gemm: int8 weights, activations quantized per call (ONNX Runtime's integer kernels); Conv: Q/DQ on its activation and weight"

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
        return f"{head}; {why}; try {self.alternatives}"


def searching(
    fmt: qdq.QuantFormat, methods: tuple[str, ...], alphas: tuple[float, ...], alternatives: str = "--precision fp16"
) -> Callable[[VariantJob], Made]:
    """A precision's make(): the search over these range methods and SmoothQuant strengths,
    or over the one method / strength the user gave; `alternatives`: what a refusal suggests."""

    def make(job: VariantJob) -> Made:
        tried_methods = [job.options.method] if job.options.method else list(methods)
        tried_alphas = [job.options.smooth] if job.options.smooth is not None else list(alphas)
        return Search(job, fmt.on(job.options.target), tried_methods, tried_alphas, alternatives).run()

    return make
