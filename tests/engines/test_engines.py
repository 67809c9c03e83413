"""Real TensorRT-RTX engine builds on this GPU-less machine, for every connector at fp32, fp16,
int8 and fp8, and the record a server needs. Running engines needs a GPU: those tests are marked."""

from __future__ import annotations

import json

import pytest
from support.checks import assert_qdq_only_on_weighted_inputs
from support.cli import assert_one_line, files_in
from support.tiers import tiered
from support.tiny_connectors import TINY

from mmexport.errors import UsageError


@pytest.mark.parametrize("name", tiered(list(TINY), fast={"mlp", "qformer"}))
def test_engines_for_every_connector_and_precision(cli, tmp_path, tiny, name):
    connector = tiny(name)
    fp32 = tmp_path / "c.onnx"
    assert cli("onnx", "-c", connector, "--preset", "tiny", "-o", fp32).code == 0
    assert cli("quantize", fp32, "--precision", "fp16").code == 0
    for low in ("int8", "fp8"):  # tiny random connectors: loose gates, the graphs are what is tested here
        result = cli("quantize", fp32, "--precision", low, "--calib", "synthetic", "--samples", "16", "--min-cosine", "0.9", "--min-token-cosine", "0.5")
        assert result.code == 0, result
        assert_qdq_only_on_weighted_inputs(tmp_path / f"c.{low}.onnx")
    for onnx_name, precision in (("c.onnx", "fp32"), ("c.fp16.onnx", "fp16"), ("c.int8.onnx", "int8"), ("c.fp8.onnx", "fp8")):
        engine = tmp_path / f"{precision}.engine"
        result = cli("trt", tmp_path / onnx_name, "--flavor", "tensorrt-rtx", "-o", engine, "--json")
        assert result.code == 0, result
        record = json.loads(result.stdout)
        assert record == json.loads((tmp_path / f"{precision}.engine.json").read_text())
        assert record["kind"] == "engine" and engine.stat().st_size == record["engine"]["engine_bytes"] > 0
        assert record["precision"] == precision and record["connector"] == connector
        targets = ["sm89", "sm120"] if precision == "fp8" else ["sm80", "sm86", "sm89", "sm120"]  # fp8 needs Ada or newer
        assert record["engine"]["flavor"] == "tensorrt-rtx" and record["engine"]["targets"] == targets
        first = record["inputs"][0]
        profile = record["engine"]["profiles"][0][first["name"]]
        assert profile["min"][0] == first["dynamic_axes"]["0"]["min"]  # first axis from its minimum
        assert record["source"]["sha256"].startswith("sha256:") and record["source"]["precision"] == precision


@pytest.mark.slow
def test_release_size_mlp_fp16_and_int8_engines(cli, tmp_path):
    fp32 = tmp_path / "llava15.onnx"
    assert cli("onnx", "-c", "mlp", "--preset", "llava-1.5-7b", "-o", fp32).code == 0
    assert cli("quantize", fp32, "--precision", "fp16").code == 0
    assert cli("quantize", fp32, "--precision", "int8", "--calib", "synthetic", "--samples", "12").code == 0
    sizes = {}
    for precision in ("fp16", "int8"):
        result = cli("trt", tmp_path / f"llava15.{precision}.onnx", "-o", tmp_path / f"{precision}.engine", "--json")
        assert result.code == 0, result
        sizes[precision] = json.loads(result.stdout)["engine"]["engine_bytes"]
    # weights dominate: 21M parameters are ~42 MB in fp16 and ~21 MB in int8
    assert 38e6 < sizes["fp16"] < 50e6 and sizes["int8"] < 0.65 * sizes["fp16"]


def test_profiles_override_and_several_profiles(cli, tmp_path, tiny):
    tiny("mlp")
    assert cli("onnx", "-c", "mlp", "--preset", "tiny", "-o", tmp_path / "m.onnx").code == 0
    result = cli(
        "trt",
        tmp_path / "m.onnx",
        "--json",
        "--arch",
        "sm86,sm89",
        "--timing-cache",
        tmp_path / "cache.bin",
        "--shapes",
        "vision_features:1x1x32:1x16x32:4x64x32",
        "--shapes",
        "vision_features:8x1x32:16x16x32:32x32x32",
    )
    assert result.code == 0, result
    engine = json.loads(result.stdout)["engine"]
    assert [p["vision_features"]["max"] for p in engine["profiles"]] == [[4, 64, 32], [32, 32, 32]]
    assert engine["targets"] == ["sm86", "sm89"]
    assert (tmp_path / "cache.bin").stat().st_size > 0


def test_one_shot_trt_from_connector(cli, tmp_path, tiny):
    tiny("linear")
    result = cli("trt", "-c", "linear", "--preset", "tiny", "--precision", "fp16", "-o", tmp_path / "lin.engine")
    assert result.code == 0, result
    assert files_in(tmp_path) == ["lin.engine", "lin.engine.json", "lin.fp16.onnx", "lin.fp16.onnx.json", "lin.onnx", "lin.onnx.json"]


@pytest.mark.parametrize(
    "args,phrase",
    [
        (["--shapes", "vision_features:1x1x31:1x16x32:4x64x32"], "must be 32"),
        (["--shapes", "vision_features:1x1x32:1x16x32:65x64x32"], "out of range"),
        (["--shapes", "vision_features:2x1x32:1x16x32:4x64x32"], "min <= opt <= max"),
        (["--shapes", "pixels:1x1x32:1x16x32:4x64x32"], "unknown input"),
        (["--shapes", "vision_features:1x1x32"], "NAME:MIN:OPT:MAX"),
        (["--arch", "sm90"], "no sm90"),
        (["--flavor", "tensorrt"], "tensorrt"),
        (["--flavor", "onnxruntime"], "unknown flavor"),
    ],
)
def test_trt_bad_input(cli, tmp_path, tiny, args, phrase):
    tiny("mlp")
    assert cli("onnx", "-c", "mlp", "--preset", "tiny", "-o", tmp_path / "m.onnx").code == 0
    assert_one_line(cli("trt", tmp_path / "m.onnx", *args), 2, phrase)
    assert not list(tmp_path.glob("*.engine*"))


def test_parser_rejection_names_the_node(cli, tmp_path, tiny):
    import onnx
    from onnx import helper

    tiny("mlp")
    assert cli("onnx", "-c", "mlp", "--preset", "tiny", "-o", tmp_path / "m.onnx").code == 0
    model = onnx.load(tmp_path / "m.onnx")
    model.graph.node.insert(0, helper.make_node("NoSuchOp", [model.graph.input[0].name], ["junk"], name="bogus_node", domain="com.example"))
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    onnx.save(model, tmp_path / "m.onnx")
    assert_one_line(cli("trt", tmp_path / "m.onnx"), 1, "bogus_node")
    assert not (tmp_path / "m.engine").exists()


def test_engine_check_and_runner_need_a_gpu(cli, tmp_path, tiny):
    from mmexport import engines

    tiny("mlp")
    assert cli("onnx", "-c", "mlp", "--preset", "tiny", "-o", tmp_path / "m.onnx").code == 0
    assert cli("trt", tmp_path / "m.onnx").code == 0
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the GPU tests cover it")
    assert_one_line(cli("check", tmp_path / "m.engine"), 2, "needs a CUDA GPU")
    with pytest.raises(UsageError, match="needs a CUDA GPU"):
        engines.load(tmp_path / "m.engine")


@pytest.mark.gpu
def test_runner_matches_pytorch_on_gpu(cli, tmp_path, tiny):
    import numpy as np

    from mmexport import engines

    tiny("mlp")
    assert cli("onnx", "-c", "mlp", "--preset", "tiny", "-o", tmp_path / "m.onnx").code == 0
    assert cli("trt", tmp_path / "m.onnx").code == 0
    assert cli("check", tmp_path / "m.engine").code == 0
    runner = engines.load(tmp_path / "m.engine")
    out = runner(np.random.rand(2, 16, 32).astype(np.float32))
    assert out["llm_embeds"].shape == (2, 16, 48)
    with pytest.raises(UsageError, match="outside the engine's profiles"):
        runner(np.zeros((65, 16, 32), dtype=np.float32))
