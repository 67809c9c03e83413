"""Comparisons every test uses: an artifact against the original implementation, and the shape
of a Q/DQ graph."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

REFERENCE_ERRORS: dict[str, tuple[float, float]] = {}  # test -> (worst rel error, worst cosine), printed at the end
WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")


def ort_run(path: Path, **inputs: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in inputs.items()})


def relative_error(actual: np.ndarray, expected: torch.Tensor) -> float:
    expected_np = expected.detach().double().numpy()
    return float(np.abs(actual - expected_np).max() / np.abs(expected_np).max())


def cosine(actual: np.ndarray, expected: torch.Tensor) -> float:
    a, e = actual.astype(np.float64).ravel(), expected.detach().double().numpy().ravel()
    return float(a @ e / (np.linalg.norm(a) * np.linalg.norm(e)))


def assert_close(actual: np.ndarray, expected: torch.Tensor, rel: float = 1e-4, cos: float = 0.99999) -> None:
    """The fp32 gate's limits: max abs error / max |reference| and cosine."""
    shaped = expected.detach().reshape(actual.shape)
    error, similarity = relative_error(actual, shaped), cosine(actual, shaped)
    assert error <= rel and similarity >= cos, (error, similarity)


def assert_matches_at(onnx_path, reference, shapes, seed=0):
    """The ONNX against the original implementation at the given input shapes (fp32 gate)."""
    generator = torch.Generator().manual_seed(seed)
    feeds = [{"vision_features": torch.randn(shape, generator=generator)} for shape in shapes]
    assert_matches_feeds(onnx_path, lambda vision_features: reference(vision_features), feeds)


def assert_matches_feeds(onnx_path, reference, feeds):
    """The ONNX's first output against `reference(**feed)` for each feed (fp32 gate)."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0].split("::")[-1]
    for feed in feeds:
        with torch.no_grad():
            expected = reference(**feed)
        actual = ort_run(onnx_path, **feed)[0]
        assert actual.shape == tuple(expected.shape)
        rel, cos = relative_error(actual, expected), cosine(actual, expected)
        worst = REFERENCE_ERRORS.get(test, (0.0, 1.0))
        REFERENCE_ERRORS[test] = (max(worst[0], rel), min(worst[1], cos))
        assert rel <= 1e-4, rel
        assert cos >= 0.99999


def assert_qdq_only_on_weighted_inputs(path):
    """TensorRT's placement (and ModelOpt's): every QuantizeLinear feeds only DequantizeLinear,
    every DequantizeLinear feeds only the activation or weight input of a MatMul/Gemm/Conv, so
    no output of any layer is quantized; and every Q/DQ'd layer has both inputs dequantized."""
    import onnx

    model = onnx.load(str(path))
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    dequantized = 0
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            assert all(user.op_type == "DequantizeLinear" for user, _ in consumers[node.output[0]]), node.name
        if node.op_type == "DequantizeLinear":
            dequantized += 1
            for user, slot in consumers[node.output[0]]:
                assert user.op_type in WEIGHTED_OPS and slot in (0, 1), f"{node.name} feeds {user.op_type} input {slot}"
    assert dequantized, "no Q/DQ at all"
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type in WEIGHTED_OPS and node.input[0] in producers and producers[node.input[0]].op_type == "DequantizeLinear":
            assert producers.get(node.input[1]) is not None and producers[node.input[1]].op_type == "DequantizeLinear", node.name
