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
from mmexport.parity import compare
from mmexport.report import human_size


def test_compare_metrics():
    expected = np.array([1.0, -2.0, 4.0], dtype=np.float32)
    same = compare(expected, expected)
    assert (same.max_abs, same.max_rel) == (0.0, 0.0) and same.cosine == pytest.approx(1.0)
    off = compare(expected + np.array([0, 0, 0.04], dtype=np.float32), expected)
    assert off.max_abs == pytest.approx(0.04, rel=1e-5) and off.max_rel == pytest.approx(0.01, rel=1e-5)
    assert off.cosine < 1.0
    assert compare(np.array([np.nan, 0, 0]), expected).cosine == 0.0  # NaN never passes
    assert compare(np.zeros(2), expected).max_abs == float("inf")  # shape mismatch never passes


def test_token_cosine_finds_one_ruined_token():
    """A global cosine hides 4 bad tokens in 200; the per-token 1st percentile does not."""
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((1, 200, 64))
    actual = expected.copy()
    actual[0, [3, 17, 90, 150]] = rng.standard_normal((4, 64))  # tokens replaced by noise
    metrics = compare(actual, expected)
    assert metrics.cosine > 0.97
    assert metrics.token_cosine_p1 < 0.5
    zero = np.zeros((4, 8))  # rows zero in both count as equal, not as ruined
    assert compare(zero, zero).token_cosine_p1 == 1.0


def test_human_size_uses_decimal_units():
    assert human_size(999) == "999 B"
    assert human_size(409_900_000) == "409.9 MB"
    assert human_size(2_500_000_000) == "2.5 GB"


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


def test_tensor_spec_json_round_trip():
    spec = TensorSpec("x", (Axis("batch", 1, 1, 8, (1, 2, 3)), Axis("tokens", 4, 8, 16, (8, 4), multiple_of=4), 16, "tokens/4"), "float16")
    data = json.loads(json.dumps(spec.to_json()))
    assert data["shape"] == ["batch", "tokens", 16, "tokens/4"]
    assert TensorSpec.from_json(data) == spec


@pytest.mark.parametrize(
    "kwargs,phrase",
    [
        (dict(min=4, opt=2, max=16), "min <= opt <= max"),
        (dict(min=1, opt=8, max=4), "min <= opt <= max"),
        (dict(min=1, opt=8, max=16, samples=(8, 17)), "size 17 is outside"),
        (dict(min=4, opt=8, max=16, samples=(6,), multiple_of=4), "size 6 is outside"),
    ],
)
def test_axis_is_validated_when_declared(kwargs, phrase):
    with pytest.raises(ValueError, match=phrase):
        Axis("tokens", **kwargs)


@pytest.mark.parametrize("name", connectors.names())
def test_every_preset_declares_valid_axes(name):
    """Every preset's axes are built (and so validated): parity samples lie within range."""
    connector = connectors.get(name)
    for config in connector.presets.values():
        for spec in connector.inputs(config):
            for axis in spec.axes.values():
                assert all(axis.fits(s) for s in axis.samples)


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


def test_calibration_folder_stops_reading_when_it_has_enough(tmp_path):
    """Files past the samples asked for are not opened (a broken one there does not matter)."""
    from mmexport.calibration import data

    connector = connectors.get("mlp")
    config = connector.config_from_dict(dict(vision_dim=16, llm_dim=8, tokens=4))
    np.save(tmp_path / "a.npy", np.ones((10, 4, 16), dtype=np.float32))
    (tmp_path / "b.npy").write_bytes(b"not an array")
    assert len(data.load(connector.inputs(config), tmp_path, 8).samples) == 8
    with pytest.raises(UsageError, match="b.npy"):
        data.load(connector.inputs(config), tmp_path, 12)


def test_lone_pytorch_model_bin_in_a_folder_is_loaded_once(tmp_path, monkeypatch):
    torch.save({"w": torch.ones(2)}, tmp_path / "pytorch_model.bin")
    calls = []
    original = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a) or original(*a, **k))
    checkpoint = open_checkpoint(tmp_path)
    assert checkpoint.keys() == ["w"] and checkpoint.tensor("w").shape == (2,)
    assert len(calls) == 1


def test_record_round_trip_and_clear_errors(tmp_path):
    from mmexport.record import ArtifactRecord, WeightsRecord, read, record_path
    from mmexport.specs import Tolerance

    connector = connectors.get("mlp")
    config = connector.preset(None)
    record = ArtifactRecord(
        "onnx",
        "m.onnx",
        "mlp",
        "llava-1.5-7b",
        {"vision_dim": 1024},
        WeightsRecord(),
        connector.inputs(config),
        connector.outputs(config),
        tolerance=Tolerance(None, 0.999, 0.99),
    )
    (tmp_path / "m.onnx").write_bytes(b"x")
    record.write(record_path(tmp_path / "m.onnx"))
    assert read(tmp_path / "m.onnx") == record
    with pytest.raises(UsageError, match="takes a 'engine' artifact"):
        read(tmp_path / "m.onnx", kind="engine")
    data = json.loads(record_path(tmp_path / "m.onnx").read_text())
    for change, phrase in (
        (dict(format="mmexport.engine/1"), "older mmexport"),
        (dict(format="other/1"), "not an mmexport manifest"),
        (dict(inputs=[{}]), "malformed"),
    ):
        record_path(tmp_path / "m.onnx").write_text(json.dumps(data | change))
        with pytest.raises(UsageError, match=phrase):
            read(tmp_path / "m.onnx")


def test_inline_writes_one_file_tensor_by_tensor(tmp_path):
    """The streaming writer gives the same graph and tensors as onnx.save of the whole message."""
    import onnx
    from onnx import helper, numpy_helper

    from mmexport.onnx_file import inline

    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((300, 200)).astype(np.float32), f"w{i}") for i in range(3)]
    small = numpy_helper.from_array(np.array([0.5], dtype=np.float32), "half")
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["a"]), helper.make_node("Mul", ["a", "half"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", 1, ["n", 300])], [helper.make_tensor_value_info("y", 1, ["n", 200])], weights + [small]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(tmp_path / "whole.onnx"))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, size_threshold=1024)
    inline(tmp_path / "ext.onnx", tmp_path / "one.onnx")
    one, whole = onnx.load(str(tmp_path / "one.onnx")), onnx.load(str(tmp_path / "whole.onnx"))
    assert not any(t.external_data for t in one.graph.initializer)
    assert {t.name: numpy_helper.to_array(t).tobytes() for t in one.graph.initializer} == {
        t.name: numpy_helper.to_array(t).tobytes() for t in whole.graph.initializer
    }
    assert [n.op_type for n in one.graph.node] == [n.op_type for n in whole.graph.node]
    onnx.checker.check_model(str(tmp_path / "one.onnx"))


def test_weight_macs_count_every_weight_per_output_position():
    """A Conv's (out, in, kh, kw) and a MatMul's (in, out) each cost one MAC per weight per
    output position: the share of MACs kept in higher precision compares them in one unit."""
    import onnx
    from onnx import helper, numpy_helper

    from mmexport.precisions.graph import weight_macs, weighted_nodes

    conv_w = numpy_helper.from_array(np.ones((8, 4, 3, 3), np.float32), "conv_w")
    mm_w = numpy_helper.from_array(np.ones((8, 16), np.float32), "mm_w")
    nodes = [
        helper.make_node("Conv", ["x", "conv_w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["c"], ["t"], name="t", perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["t", "mm_w"], ["y"], name="mm"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [conv_w, mm_w],
    )
    model = helper.make_model(graph)
    assert {n.name: weight_macs(model, n) for n in weighted_nodes(model)} == {"conv": 8 * 4 * 3 * 3, "mm": 8 * 16}


def test_fp16_probe_frees_each_tensor_once_read(tmp_path):
    """The fp16 probe reads only each tensor's max |x|: a chain of 40 tensors of 16 MB must not
    be alive all at once (it was: 23 GB for a release-size tower on one large photo)."""
    import subprocess
    import sys

    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Add", [f"t{i}", "one"], [f"t{i + 1}"]) for i in range(40)]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [2048, 2048])],
        [helper.make_tensor_value_info("t40", TensorProto.FLOAT, [2048, 2048])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
        value_info=[helper.make_tensor_value_info(f"t{i}", TensorProto.FLOAT, [2048, 2048]) for i in range(1, 40)],
    )
    onnx_path = tmp_path / "chain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), onnx_path)
    script = f"""
import resource, numpy as np, onnx
from mmexport.precisions.fp16_measure import float_tensors, maxima
model = onnx.load({str(onnx_path)!r})
feeds = {{"t0": np.zeros((2048, 2048), np.float32)}}
maxima(model, float_tensors(model)[:1], [feeds])  # one tensor probed: the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
found = maxima(model, float_tensors(model), [feeds])
print(round(found["t40"]), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    largest, grown_mb = map(int, subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split())
    assert largest == 40
    assert grown_mb < 200, f"the probe held {grown_mb} MB more than one tensor's worth (all 40 alive: ~640 MB)"


def test_video_patch_times_are_vllms():
    """Qwen3-VL's temporal patches' times as vLLM computes them from frame indices at 2 per second:
    the mean of each patch's first and last frame, the last frame repeated to fill the final patch."""
    from mmexport.hf.service import patch_times

    assert patch_times(6, 3, 2) == [0.25, 1.25, 2.25]
    assert patch_times(5, 3, 2) == [0.25, 1.25, 2.0]
    assert patch_times(1, 1, 2) == [0.0]
