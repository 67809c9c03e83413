"""The quantization internals on small graphs built here, each against what it promises: SmoothQuant
leaves the product unchanged and flattens the activation's channels; the range methods read a
histogram as documented; Q/DQ sits only on weighted inputs with per-channel weights; the search
ranks layers by their measured effect, stops a smoothing climb that got worse, and records every
candidate and every skip."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from support.checks import assert_qdq_only_on_weighted_inputs

from mmexport.parity import OrtRunner, ParityReport, run_gate
from mmexport.parity.gate import Case
from mmexport.parity.runners import Expected
from mmexport.precisions import QuantizeOptions, VariantJob, qdq, ranges
from mmexport.precisions.graph import name_nodes, run_with_outputs, weighted_nodes
from mmexport.precisions.search import Search
from mmexport.precisions.smoothquant import smooth
from mmexport.specs import Tolerance

WIDTH, HIDDEN, TOKENS = 16, 24, 12


def mlp(seed: int = 0, scale_second: float = 1.0) -> onnx.ModelProto:
    """x [batch, tokens, 16] -> MatMul(16x24) -> Relu -> MatMul(24x16) * scale_second: two weighted layers."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array((rng.normal(size=(WIDTH, HIDDEN)) / 4).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.normal(size=(HIDDEN, WIDTH)) / 5 * scale_second).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", TOKENS, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", TOKENS, WIDTH])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    name_nodes(model)
    return model


def outlier_features(count: int, seed: int, channel: int = 3, scale: float = 60.0) -> list[dict[str, np.ndarray]]:
    """Gaussian features with one outlier channel, as vision features have."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        x = rng.normal(size=(1, TOKENS, WIDTH)).astype(np.float32)
        x[..., channel] *= scale
        samples.append({"x": x})
    return samples


def run(model: onnx.ModelProto, sample: dict[str, np.ndarray], tmp_path) -> np.ndarray:
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return OrtRunner(path).run(sample)["y"]


def test_smoothing_keeps_the_product_and_flattens_the_channels(tmp_path):
    model, samples = mlp(), outlier_features(4, seed=1)
    before = [run(model, s, tmp_path) for s in samples]
    values = [next(run_with_outputs(model, ["x", "r"], [s])) for s in samples]
    amax = {name: np.max([np.abs(v[name]).reshape(-1, v[name].shape[-1]).max(0) for v in values], axis=0) for name in ("x", "r")}
    smoothed_amax = smooth(model, amax, alpha=0.5)
    after = [run(model, s, tmp_path) for s in samples]
    assert all(np.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(before, after))  # the product is unchanged
    assert set(smoothed_amax) == {"x__smoothed", "r__smoothed"}
    measured = {name: max(float(np.abs(next(run_with_outputs(model, [name], [s]))[name]).max()) for s in samples) for name in smoothed_amax}
    assert all(np.isclose(measured[name], smoothed_amax[name], rtol=1e-5) for name in smoothed_amax)  # the returned ranges are exact
    assert smoothed_amax["x__smoothed"] < amax["x"].max() / 3  # the outlier channel moved into the weight


def test_range_methods_read_the_histogram_as_documented():
    rng = np.random.default_rng(0)
    values = np.abs(np.concatenate([rng.normal(size=200_000), [40.0]]))  # Gaussian with one far outlier
    counts = np.histogram(values, bins=ranges.BINS, range=(0, values.max()))[0].astype(np.float64)
    hist = ranges.Histogram(float(values.max()), counts)
    assert ranges.choose_amax(hist, "minmax", 127) == pytest.approx(40.0)
    assert ranges.choose_amax(hist, "percentile", 127, 99.9) == pytest.approx(np.quantile(values, 0.999), rel=0.02)
    clip = ranges.choose_amax(hist, "mse", 127)
    assert 3.0 < clip < 40.0  # the lone outlier is not worth the rounding noise it costs every other value
    assert 2.0 < ranges.choose_amax(hist, "entropy", 127) < 40.0
    with pytest.raises(ValueError):
        ranges.choose_amax(hist, "max", 127)


def test_qdq_sits_on_weighted_inputs_with_per_channel_weights(tmp_path):
    model = mlp()
    nodes = weighted_nodes(model)
    qdq.insert(model, nodes, {n.input[0]: 4.0 for n in nodes}, qdq.INT8.on("tensorrt"))
    onnx.save(model, tmp_path / "q.onnx")
    assert_qdq_only_on_weighted_inputs(tmp_path / "q.onnx")
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    stored = weights["w1_quantized"]
    assert stored.dtype == np.int8 and weights["w1_scale"].shape == (HIDDEN,)  # one scale per output channel
    assert np.abs(stored).max() == 127
    assert all(np.all(v == 0) for k, v in weights.items() if k.endswith("_zero"))  # symmetric: zero points 0
    sample = outlier_features(1, seed=3, scale=1.0)[0]
    assert np.abs(OrtRunner(tmp_path / "q.onnx").run(sample)["y"] - run(mlp(), sample, tmp_path)).max() < 0.05


def test_cpu_target_quantizes_matmul_activations_per_call_in_the_form_onnxruntime_fuses(tmp_path):
    """--target cpu: each MatMul becomes DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul, which
    ONNX Runtime's optimizer turns into its integer kernels (no float MatMul left, no static Q/DQ)."""
    import onnxruntime as ort

    model = mlp()
    nodes = weighted_nodes(model)
    qdq.insert(model, nodes, {n.input[0]: 4.0 for n in nodes}, qdq.INT8.on("cpu"))
    onnx.save(model, tmp_path / "q.onnx")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulInteger") == len(nodes) and "MatMul" not in ops and "QuantizeLinear" not in ops
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    stored = next(v for k, v in weights.items() if k.startswith("w1") and k.endswith("_quantized"))
    assert stored.dtype == np.int8 and np.abs(stored).max() == 63  # 7-bit weights for CPUs without VNNI
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(tmp_path / "q.onnx"), options, providers=["CPUExecutionProvider"])
    fused = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert "MatMulInteger" not in fused and {"DynamicQuantizeMatMul", "MatMulIntegerToFloat"} & set(fused), fused
    sample = outlier_features(1, seed=3, scale=1.0)[0]
    assert np.abs(OrtRunner(tmp_path / "q.onnx").run(sample)["y"] - run(mlp(), sample, tmp_path)).max() < 0.05


def normalized_mlp(seed: int = 0) -> onnx.ModelProto:
    """x -> MatMul -> Relu -> per-token L2 normalization -> MatMul: whatever the tokens of x carry,
    the second layer's input is tame, so the first layer is the one int8 hurts."""
    model = mlp(seed)
    graph = model.graph
    graph.node[1].output[0] = "relu"
    graph.node.insert(2, helper.make_node("LpNormalization", ["relu"], ["r"], axis=-1, p=2, name="norm"))
    name_nodes(model)
    return model


def token_outliers(count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """A few tokens 200x the others in every channel: no per-channel smoothing helps the layer that reads them."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        x = rng.normal(size=(1, TOKENS, WIDTH)).astype(np.float32)
        x[0, rng.choice(TOKENS, 2, replace=False)] *= 200.0
        samples.append({"x": x})
    return samples


def _job(tmp_path, model: onnx.ModelProto, fit, search, tolerance: Tolerance, alphas_passed: list | None = None) -> VariantJob:
    """A real job: candidates written and run in ONNX Runtime against the fp32 graph's outputs."""
    source = tmp_path / "source.onnx"
    onnx.save(model, source)
    reference = OrtRunner(source)

    def cases(samples):
        return [Case({"batch": 1}, s, reference.run(s)) for s in samples]

    def gate_on(samples, label):
        def gate(candidate: onnx.ModelProto) -> ParityReport:
            onnx.save(candidate, tmp_path / "candidate.onnx")
            return run_gate(OrtRunner(tmp_path / "candidate.onnx"), Expected(["x"], ["y"]), cases(samples), tolerance, label)

        return gate

    return VariantJob(
        lambda: onnx.load(source), QuantizeOptions(calib="given", target="cpu"), tolerance, fit, gate_on(search, "search"), gate_on(search, "gate"), probe=fit
    )


def test_the_search_ranks_by_measured_effect_and_keeps_the_harmful_layer(tmp_path):
    """Token outliers reach only the first layer (the second reads normalized tokens): no all-int8
    candidate passes, the ranking measures keeping the first layer as the most helpful, and the
    variant keeps exactly that one in higher precision."""
    model = normalized_mlp()
    first = weighted_nodes(model)[0].name
    job = _job(tmp_path, model, token_outliers(8, seed=5), token_outliers(3, seed=6), Tolerance(max_rel=None, min_cosine=0.9999, min_token_cosine=0.999))
    made = Search(job, qdq.INT8.on("cpu"), ["minmax", "mse"], [0.5, 0.65, 0.8, 0.0]).run()
    assert made.refusal is None and made.report.passed
    assert list(made.details["kept"]) == [first] and "quantizing every layer but this one" in made.details["kept"][first]
    tried = made.details["search"]
    assert all(not entry["passed"] for entry in tried if "cosine" in entry and entry["kept"] == 0)
    assert all("skipped" in entry or "cosine" in entry for entry in tried)  # every candidate, or why it was not tried


class Scripted(Search):
    """The search's choices on scores given here (by smoothing strength), graphs never built."""

    def __init__(self, scores: dict[float, float], tolerance: Tolerance):
        self.scores, self.tried, self.alphas, self.methods = scores, [], [0.5, 0.65, 0.8, 0.0], ["minmax", "mse"]
        self.job = type("Job", (), {"tolerance": tolerance, "step": staticmethod(lambda m: None)})()
        self.built: list[tuple[float, str]] = []

    def base(self, alpha):
        from mmexport.precisions.search import Base

        return Base(alpha, {})

    def candidate(self, base, method, kept):
        from mmexport.parity import ParityRow
        from mmexport.parity.metrics import Metrics
        from mmexport.precisions.search import Candidate

        self.built.append((base.alpha, method))
        cosine = self.scores[base.alpha] - (0.0001 if method == "mse" else 0.0)
        report = ParityReport(self.job.tolerance, "scripted", rows=[ParityRow.of({}, "y", Metrics(0, 0, cosine, cosine), self.job.tolerance)])
        self.tried.append({"smooth_alpha": base.alpha or None, "method": method, "kept": len(kept), "cosine": cosine, "passed": report.passed})
        return Candidate(base, method, kept, None, report)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "scores, built",
    [
        ({0.5: 0.990, 0.65: 0.985, 0.8: 0.999, 0.0: 0.980}, [0.5, 0.65, 0.0]),  # worse at 0.65: 0.8 is not tried, 'off' is
        ({0.5: 0.985, 0.65: 0.990, 0.8: 0.989, 0.0: 0.980}, [0.5, 0.65, 0.8, 0.0]),  # better at 0.65: the climb goes on
    ],
)
def test_a_smoothing_climb_that_got_worse_goes_no_further(scores, built):
    searched = Scripted(scores, Tolerance(max_rel=None, min_cosine=0.9999, min_token_cosine=None))
    best = searched.sweep()
    assert [alpha for alpha, method in searched.built if method == "minmax"] == built
    assert [alpha for alpha, method in searched.built if method == "mse"] == [best.base.alpha]  # clipping at the best strength only
    skipped = [e for e in searched.tried if "skipped" in e]
    assert len(skipped) == (4 - len(built)) + 3 and all(e["skipped"] for e in skipped)
