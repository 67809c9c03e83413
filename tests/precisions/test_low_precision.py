"""Low precision that holds on data the defaults were not tuned on. The search was designed on the
`channels` family (outlier channels); here each other family (band, token outliers, massive
activations) calibrates and gates on its own held-out samples. INT8 installs or refuses with the
cause; FP8 (E4M3) installs and builds for Ada and newer; --target chooses the surroundings."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
from support.checks import assert_qdq_only_on_weighted_inputs
from support.cli import assert_one_line, files_in
from support.references import save_llava_projector
from support.tiers import tiered

from mmexport import runtime
from mmexport.calibration.synthetic import FAMILIES

VISION, LLM, TOKENS = 256, 512, 96


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    from mmexport.cli import main

    folder = tmp_path_factory.mktemp("lowp")
    save_llava_projector(folder / "w.safetensors", VISION, LLM, seed=3)
    assert main(["onnx", "-c", "mlp", "-w", str(folder / "w.safetensors"), "-o", str(folder / "m.onnx")]) == 0
    for family, make in FAMILIES.items():
        np.save(folder / f"{family}.npy", make((40, TOKENS, VISION), seed=17))
    return folder


def quantize(cli, mlp, tmp_path, precision, family, *extra):
    out = tmp_path / f"{family}.{precision}.onnx"
    result = cli("quantize", mlp / "m.onnx", "--precision", precision, "--calib", mlp / f"{family}.npy", "-o", out, "--json", *extra)
    return result, out


def worst(record):
    rows = record["parity"]["rows"]
    return min(r["cosine"] for r in rows), min(r["token_cosine_p1"] for r in rows)


@pytest.mark.parametrize("family", tiered([f for f in FAMILIES if f != "channels"], fast={"massive"}))
def test_fp8_holds_on_every_family(cli, mlp, tmp_path, family):
    result, out = quantize(cli, mlp, tmp_path, "fp8", family)
    assert result.code == 0, result
    record = json.loads(result.stdout)
    cosine, token = worst(record)
    assert cosine >= 0.998 and token >= 0.995
    assert record["parity"]["inputs"] == "held-out calibration samples"
    model = onnx.load(out)
    stored = {t.data_type for t in model.graph.initializer if t.name.endswith("_quantized")}
    assert stored == {onnx.TensorProto.FLOAT8E4M3FN}
    assert_qdq_only_on_weighted_inputs(out)
    assert cli("check", out).code == 0


@pytest.mark.parametrize("family", tiered([f for f in FAMILIES if f != "channels"], fast={"tokens"}))
def test_int8_installs_or_refuses_with_the_cause(cli, mlp, tmp_path, family):
    """Either a variant that passes its gate (cosine >= 0.999, token p1 >= 0.99) or one line that
    says why one scale per tensor cannot, names fp8, and installs nothing."""
    result, out = quantize(cli, mlp, tmp_path, "int8", family)
    if result.code == 0:
        cosine, token = worst(json.loads(result.stdout))
        assert cosine >= 0.999 and token >= 0.99
        assert cli("check", out).code == 0
    else:
        assert_one_line(result, 1, "found no variant that passes", "the largest", "fp8")
        assert not out.exists() and (tmp_path / f"{family}.int8.failed").is_dir()


def test_int8_on_a_family_it_was_not_tuned_on_installs(cli, mlp, tmp_path):
    """`band`: a contiguous band of always-positive channels, Laplace tails, varying token norms."""
    result, out = quantize(cli, mlp, tmp_path, "int8", "band")
    assert result.code == 0, result
    record = json.loads(result.stdout)
    cosine, token = worst(record)
    assert cosine >= 0.999 and token >= 0.99
    q = record["quantization"]
    assert q["chosen"] and q["search"] and q["search"][-1]["passed"]  # says what was tried and what was chosen
    assert all(why.startswith("kept in fp16") for why in q["kept"].values())


def test_fp8_engines_need_ada_or_newer(cli, mlp, tmp_path):
    result, out = quantize(cli, mlp, tmp_path, "fp8", "massive")
    assert result.code == 0, result
    built = cli("trt", out, "--flavor", "tensorrt-rtx", "--arch", "sm89", "-o", tmp_path / "m.fp8.engine", "--json")
    assert built.code == 0, built
    assert json.loads(built.stdout)["engine"]["targets"] == ["sm89"]
    assert_one_line(cli("trt", out, "--flavor", "tensorrt-rtx", "--arch", "sm86", "-o", tmp_path / "x.engine"), 2, "sm89 or newer", "sm86")
    assert not (tmp_path / "x.engine").exists()


def test_fp8_variant_runs_in_the_runtime_and_a_triton_repository(cli, mlp, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    result, out = quantize(cli, mlp, tmp_path, "fp8", "massive")
    assert result.code == 0, result
    x = FAMILIES["massive"]((2, TOKENS, VISION), seed=99)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", runtime.TargetWarning)  # made for TensorRT, run here on the CPU
        got = runtime.load(out)(x)["llm_embeds"]
    reference = runtime.load(mlp / "m.onnx")(x)["llm_embeds"]
    cosine = float(np.dot(got.ravel(), reference.ravel()) / np.linalg.norm(got) / np.linalg.norm(reference))
    assert 0.998 <= cosine < 0.99999  # fp8 really ran: close, not exact
    assert cli("triton", out, "--repo", tmp_path / "repo", "--name", "proj_fp8").code == 0
    config = text_format.Parse((tmp_path / "repo" / "proj_fp8" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.input[0].data_type == model_config_pb2.TYPE_FP32 and config.platform == "onnxruntime_onnx"
    assert json.loads(config.parameters["mmexport"].string_value)["precision"] == "fp8"
    assert (tmp_path / "repo" / "proj_fp8" / "1" / "model.onnx").read_bytes() == out.read_bytes()


def test_target_cpu_keeps_fp32_around_and_the_runtime_says_when_a_target_differs(cli, mlp, tmp_path):
    for target in ("tensorrt", "cpu"):
        result, out = quantize(cli, mlp, tmp_path, "int8", "channels", "--target", target, "-o", tmp_path / f"{target}.onnx")
        assert result.code == 0, result
        assert json.loads(result.stdout)["target"] == target
    floats = {t.data_type for t in onnx.load(tmp_path / "cpu.onnx").graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    assert floats == {onnx.TensorProto.FLOAT}  # nothing in fp16 around the int8 layers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made_for_gpu = runtime.load(tmp_path / "tensorrt.onnx")
        runtime.load(tmp_path / "cpu.onnx")
    assert [str(w.message) for w in caught if issubclass(w.category, runtime.TargetWarning)] == made_for_gpu.notes
    assert "--target cpu" in made_for_gpu.notes[0]


def test_failed_low_precision_installs_nothing(cli, mlp, tmp_path):
    before = files_in(tmp_path)
    result, out = quantize(cli, mlp, tmp_path, "int8", "massive", "--min-token-cosine", "0.9999999", "--smooth", "0.5", "--method", "minmax")
    assert_one_line(result, 1, "found no variant that passes")
    assert files_in(tmp_path) == [*before, "massive.int8.failed"]


@pytest.mark.slow
@pytest.mark.parametrize("connector", ["c-abstractor", "ldp", "h-reducer", "patch-merger"])
def test_int8_for_convolutional_and_merging_connectors(cli, tmp_path, connector):
    """At their release presets (default), with --calib synthetic: once none of them got an int8 variant."""
    assert cli("onnx", "-c", connector, "-o", tmp_path / "c.onnx").code == 0
    result = cli("quantize", tmp_path / "c.onnx", "--precision", "int8", "--calib", "synthetic", "--json")
    assert result.code == 0, result
    record = json.loads(result.stdout)
    cosine, token = worst(record)
    assert cosine >= 0.999 and token >= 0.99 and record["quantization"]["quantized_mac_share"] >= 0.5
    assert_qdq_only_on_weighted_inputs(tmp_path / "c.int8.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["band", "massive"])
def test_llava15_mlp_release_dims(cli, tmp_path, family):
    """LLaVA-1.5-7B's projector (1024 -> 4096 -> 4096), calibrated on families it was not tuned on."""
    from mmexport.calibration.synthetic import features

    assert cli("onnx", "-c", "mlp", "-o", tmp_path / "m.onnx").code == 0
    np.save(tmp_path / "f.npy", features(family, (32, 576, 1024), seed=5))
    for precision in ("int8", "fp8"):
        result = cli("quantize", tmp_path / "m.onnx", "--precision", precision, "--calib", tmp_path / "f.npy", "--json")
        assert result.code == 0, result
        cosine, token = worst(json.loads(result.stdout))
        assert (cosine, token) >= ((0.999, 0.99) if precision == "int8" else (0.998, 0.995))
    assert cli("trt", tmp_path / "m.fp8.onnx", "--flavor", "tensorrt-rtx", "--arch", "sm89").code == 0
