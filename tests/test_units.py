"""Unit tests of the small pieces: metrics, axes, key layouts, staging, checkpoint reading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mmexport import connectors
from mmexport.artifacts import Staging
from mmexport.checkpoint import open_checkpoint
from mmexport.connectors import Axis, TensorSpec
from mmexport.errors import UsageError, WeightsError
from mmexport.exporter.parity import compare


def test_compare_metrics():
    expected = np.array([1.0, -2.0, 4.0], dtype=np.float32)
    assert compare(expected, expected) == (0.0, 0.0, pytest.approx(1.0))
    max_abs, max_rel, cosine = compare(expected + np.array([0, 0, 0.04], dtype=np.float32), expected)
    assert max_abs == pytest.approx(0.04, rel=1e-5) and max_rel == pytest.approx(0.01, rel=1e-5)
    assert cosine < 1.0
    assert compare(np.array([np.nan, 0, 0]), expected)[2] == 0.0  # NaN never passes
    assert compare(np.zeros(2), expected)[0] == float("inf")  # shape mismatch never passes


def test_axis_range_and_multiple():
    axis = Axis("tokens", min=4, opt=8, max=16, samples=(8,), multiple_of=4)
    axis.check(12, "x")
    with pytest.raises(UsageError, match="multiple of 4"):
        axis.check(10, "x")
    with pytest.raises(UsageError, match=r"in \[4, 16\]"):
        axis.check(20, "x")


@pytest.mark.parametrize("name", connectors.names())
def test_every_connector_declares_a_complete_contract(name):
    connector = connectors.get(name)
    config = connector.preset(None)
    specs = connector.inputs(config)
    assert specs and connector.outputs(config)
    sizes = connector.example_sizes(config)
    static = {d for s in specs for d in s.dims if isinstance(d, int)}
    assert all(v >= 2 and v not in static for v in sizes.values())  # nothing the exporter can specialize
    shapes = connector.parity_shapes(config)
    first = next(iter(specs[0].axes.values()))
    assert len(shapes) >= 3 and any(s[first.name] == first.min for s in shapes)  # batch 1 (or the smallest merge)
    for axis in (a for s in specs for a in s.axes.values()):
        assert len({shape[axis.name] for shape in shapes}) >= 3, f"{axis.name} is checked at fewer than 3 sizes"
    inputs = connector.dummy_inputs(config, shapes[1])
    assert [tuple(t.shape) for t in inputs.values()] == [s.shape(shapes[1]) for s in specs]
    assert connector.presets[connector.default_preset] == config


def test_key_layouts_rename():
    qformer = connectors.get("qformer")
    lavis = next(layout for layout in qformer.key_layouts if layout.name == "lavis-original")
    assert lavis.rename("Qformer.bert.encoder.layer.3.crossattention.self.key.weight") == "qformer.encoder.layer.3.crossattention.attention.key.weight"
    assert lavis.rename("Qformer.bert.encoder.layer.3.attention.output.LayerNorm.bias") == "qformer.encoder.layer.3.attention.output.LayerNorm.bias"
    assert lavis.rename("t5_proj.weight") == "language_projection.weight"
    assert lavis.rename("visual_encoder.blocks.0.attn.qkv.weight") is None


def test_tensor_spec_json():
    spec = TensorSpec("x", (Axis("batch", 1, 1, 8, (1, 2, 3)), 16))
    assert spec.to_json()["shape"] == ["batch", 16]
    assert json.dumps(spec.to_json())


def test_staging_discards_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with Staging(tmp_path / "a.onnx") as staging:
            staging.path().write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staging_commit(tmp_path):
    with Staging(tmp_path / "a.onnx") as staging:
        staging.path().write_text("model")
        staging.path("a.onnx.json").write_text("{}")
        staging.commit(["a.onnx", "a.onnx.json"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "a.onnx.json"]


def test_checkpoint_reads_only_what_is_asked(tmp_path):
    save_file({"a": torch.ones(2), "b": torch.zeros(3)}, tmp_path / "w.safetensors")
    checkpoint = open_checkpoint(tmp_path / "w.safetensors")
    assert checkpoint.keys() == ["a", "b"]
    assert checkpoint.tensor("b").shape == (3,)


def test_checkpoint_unwraps_training_checkpoints(tmp_path):
    torch.save({"model": {"w": torch.ones(1)}, "epoch": 1}, tmp_path / "ckpt.pth")
    assert open_checkpoint(tmp_path / "ckpt.pth").keys() == ["w"]


def test_folder_without_weights(tmp_path):
    with pytest.raises(WeightsError, match="no weights in folder"):
        open_checkpoint(tmp_path)
