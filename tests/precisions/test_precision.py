"""FP16 and calibrated INT8 variants: parity against the fp32 PyTorch reference on held-out
outlier-heavy features, TensorRT-ready QDQ (checked by building with TensorRT-RTX), bad data."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file
from support import trt_rtx
from support.cli import assert_one_line, export, files_in, run_subprocess
from support.references import blip2, save_llava_projector

from mmexport.calibration.synthetic import outlier_features

TOKENS, VISION, LLM = 64, 256, 512


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory):
    """A LLaVA-1.5-style MLP (transformers weights) exported to fp32, and outlier-heavy features."""
    from mmexport.cli import main

    folder = tmp_path_factory.mktemp("mlp")
    save_llava_projector(folder / "w.safetensors", VISION, LLM, seed=11)
    assert main(["onnx", "-c", "mlp", "-w", str(folder / "w.safetensors"), "-o", str(folder / "mlp.onnx")]) == 0
    np.save(folder / "feats.npy", outlier_features((40, TOKENS, VISION), seed=3))
    return folder


def test_synthetic_features_have_outlier_channels():
    features = outlier_features((4, 256, 1024), seed=0)
    channel_absmax = np.abs(features).reshape(-1, 1024).max(axis=0)
    ratio = channel_absmax / np.median(channel_absmax)
    assert 5 <= (ratio > 10).sum() <= 20  # ~1% of channels far above the rest
    assert np.array_equal(outlier_features((1, 8, 16), seed=2), outlier_features((1, 8, 16), seed=2))


def test_fp16_variant(cli, mlp_onnx):
    result = cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "fp16", "--calib", mlp_onnx / "feats.npy", "--json")
    assert result.code == 0, result
    manifest = json.loads(result.stdout)
    assert manifest["precision"] == "fp16" and manifest["parity"]["passed"]
    assert min(r["cosine"] for r in manifest["parity"]["rows"]) >= 0.9999
    assert manifest["size_ratio_vs_fp32"] < 0.55
    model = onnx.load(mlp_onnx / "mlp.fp16.onnx")
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 I/O by default
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert trt_rtx.build(mlp_onnx / "mlp.fp16.onnx") > 0


def test_fp16_io(cli, mlp_onnx, tmp_path):
    out = tmp_path / "io16.onnx"
    assert cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "fp16", "--io", "fp16", "-o", out).code == 0
    assert onnx.load(out).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert json.loads((tmp_path / "io16.onnx.json").read_text())["inputs"][0]["dtype"] == "float16"


def assert_tensorrt_ready_qdq(path):
    """Symmetric int8 (zero points 0), per-channel weights, no int32 (bias) dequantization."""
    model = onnx.load(path)
    inits = {t.name: t for t in model.graph.initializer}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for node in qdq:
        zero_point = inits.get(node.input[2]) if len(node.input) > 2 else None
        assert zero_point is not None and zero_point.data_type == onnx.TensorProto.INT8
        assert not numpy_helper.to_array(zero_point).any()
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            assert inits[node.input[0]].data_type == onnx.TensorProto.INT8  # never an int32 bias
            assert len(inits[node.input[1]].dims) == 1 and inits[node.input[1]].dims[0] > 1  # per-channel


@pytest.mark.parametrize(
    "method,smooth", [("minmax", "0.5"), pytest.param("mse", "0.5", marks=pytest.mark.slow), pytest.param("percentile", "0", marks=pytest.mark.slow)]
)
def test_int8_variant_on_outlier_heavy_features(cli, mlp_onnx, tmp_path, method, smooth):
    out = tmp_path / f"mlp.{method}.onnx"
    result = cli(
        "quantize", mlp_onnx / "mlp.onnx", "--precision", "int8", "--calib", mlp_onnx / "feats.npy", "--method", method, "--smooth", smooth, "-o", out, "--json"
    )
    assert result.code == 0, result
    manifest = json.loads(result.stdout)
    q = manifest["quantization"]
    assert q["method"] == method and q["calibration"]["samples"] + q["calibration"]["search"] + q["calibration"]["held_out"] == 40
    assert q["smooth_alpha"] == (float(smooth) or None)
    assert q["calibration"]["digest"].startswith("sha256:") and not q["calibration"]["synthetic"]
    assert q["quantized_mac_share"] >= 0.5 and q["quantized_layers"] >= 1
    assert min(r["cosine"] for r in manifest["parity"]["rows"]) >= 0.999  # held-out, vs fp32 PyTorch
    assert len(manifest["parity"]["rows"]) == q["calibration"]["held_out"]
    assert_tensorrt_ready_qdq(out)
    assert trt_rtx.build(out) > 0


@pytest.mark.slow
def test_entropy_ranges_on_outlier_channels_are_refused_with_the_cause(cli, mlp_onnx, tmp_path):
    """TensorRT's entropy calibration clips the outlier channels that carry the output's energy:
    no variant passes, and the one line names the activation that spreads most and what to do instead."""
    out = tmp_path / "mlp.entropy.onnx"
    result = cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "int8", "--calib", mlp_onnx / "feats.npy", "--method", "entropy", "-o", out)
    assert_one_line(result, 1, "found no variant that passes", "the largest", "try --precision fp8")
    assert not out.exists()


@pytest.mark.slow
def test_int8_qformer_attention_connector(cli, tmp_path):
    model = blip2(vision_dim=64, hidden=96, layers=2, heads=12, queries=8, llm_dim=48)
    save_file({k: v.clone() for k, v in model.state_dict().items()}, tmp_path / "blip2.safetensors")
    onnx_path, _ = export(cli, tmp_path, "qformer", tmp_path / "blip2.safetensors")
    np.savez(tmp_path / "feats.npz", vision_features=outlier_features((24, 33, 64), seed=5))
    result = cli("quantize", onnx_path, "--precision", "int8", "--calib", tmp_path / "feats.npz", "--json")
    assert result.code == 0, result
    manifest = json.loads(result.stdout)
    assert manifest["parity"]["tolerance"]["min_cosine"] == 0.995
    assert min(r["cosine"] for r in manifest["parity"]["rows"]) >= 0.995
    assert_tensorrt_ready_qdq(tmp_path / "qformer.int8.onnx")
    assert trt_rtx.build(tmp_path / "qformer.int8.onnx") > 0


def test_calibration_folder_of_mixed_files(cli, mlp_onnx, tmp_path):
    folder = tmp_path / "feats"
    folder.mkdir()
    features = outlier_features((12, TOKENS, VISION), seed=8)
    np.save(folder / "a.npy", features[:4])
    np.savez(folder / "b.npz", vision_features=features[4:8])
    save_numpy({"vision_features": features[8:]}, str(folder / "c.safetensors"))
    result = cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "int8", "--calib", folder, "-o", tmp_path / "m.onnx", "--json")
    assert result.code == 0, result
    calibration = json.loads(result.stdout)["quantization"]["calibration"]
    assert calibration["samples"] + calibration["search"] + calibration["held_out"] == 12


def test_synthetic_calibration_is_loud(cli, mlp_onnx, tmp_path):
    result = cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "fp16", "--calib", "synthetic", "--samples", "10", "-o", tmp_path / "s.onnx", "--json")
    assert result.code == 0, result
    assert "SYNTHETIC" in result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["quantization"]["calibration"]["synthetic"] is True
    assert any("SYNTHETIC" in w for w in manifest["warnings"])


@pytest.mark.slow  # the fast tier has test_low_precision::test_failed_low_precision_installs_nothing
def test_failed_int8_gate_installs_nothing(cli, mlp_onnx, tmp_path):
    out = tmp_path / "strict.onnx"
    result = cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "int8", "--calib", mlp_onnx / "feats.npy", "--min-cosine", "0.9999999", "-o", out)
    assert_one_line(result, 1, "parity failed")
    assert not out.exists()
    assert json.loads((tmp_path / "strict.failed" / "strict.onnx.json").read_text())["parity"]["passed"] is False


@pytest.mark.slow
def test_int8_fallback_ends_when_only_convolutions_are_left(tmp_path):
    """H-Reducer's weighted layers are mostly convolutions, which the fallback does not rank:
    an unreachable gate must end in the clear failure, not loop (it once did). A subprocess with
    a deadline, so a hang fails this test instead of stalling the suite."""
    assert run_subprocess("onnx", "-c", "h-reducer", "-o", tmp_path / "h.onnx", "--no-check", cwd=tmp_path).code == 0
    result = run_subprocess(
        "quantize",
        tmp_path / "h.onnx",
        "--precision",
        "int8",
        "--calib",
        "synthetic",
        "--samples",
        "10",
        "--min-cosine",
        "0.99999999",
        cwd=tmp_path,
        timeout=600,
    )
    assert_one_line(result, 1, "parity failed")
    assert not (tmp_path / "h.int8.onnx").exists() and (tmp_path / "h.int8.failed").is_dir()


def test_one_shot_export_and_int8(cli, tmp_path, mlp_onnx):
    result = cli("onnx", "-c", "mlp", "-w", mlp_onnx / "w.safetensors", "-o", tmp_path / "m.onnx", "--precision", "int8", "--calib", mlp_onnx / "feats.npy")
    assert result.code == 0, result
    assert files_in(tmp_path) == ["m.int8.heldout.npz", "m.int8.onnx", "m.int8.onnx.json", "m.onnx", "m.onnx.json"]


@pytest.mark.parametrize(
    "make,phrase",
    [
        (lambda: outlier_features((10, TOKENS, VISION)).reshape(10, -1), "must have rank 3"),
        (lambda: outlier_features((10, TOKENS, VISION + 1)), "wrong vision tower"),
        (lambda: outlier_features((3, TOKENS, VISION)), "at least 8"),
        (lambda: np.where(np.arange(VISION) == 5, np.nan, outlier_features((10, TOKENS, VISION))).astype(np.float32), "NaN or Inf"),
        (lambda: np.full((10, TOKENS, VISION), np.inf, dtype=np.float32), "NaN or Inf"),
        (lambda: np.ones((10, TOKENS, VISION), dtype=np.int64), "must be float32, got int64"),
    ],
)
def test_bad_calibration_data(cli, mlp_onnx, tmp_path, make, phrase):
    np.save(tmp_path / "bad.npy", make())
    result = cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "int8", "--calib", tmp_path / "bad.npy", "-o", tmp_path / "x.onnx")
    assert_one_line(result, 2, phrase)
    assert sorted(files_in(tmp_path)) == ["bad.npy"]


def test_pickled_object_array_is_refused(cli, mlp_onnx, tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    assert_one_line(cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "int8", "--calib", tmp_path / "obj.npy"), 2, "Python objects")


def test_npz_without_the_input_name(cli, mlp_onnx, tmp_path):
    np.savez(tmp_path / "f.npz", a=outlier_features((10, TOKENS, VISION)), b=np.zeros(1))
    assert_one_line(cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "int8", "--calib", tmp_path / "f.npz"), 2, "lacks input")


def test_int8_needs_calibration(cli, mlp_onnx):
    assert_one_line(cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "int8"), 2, "--calib")


def test_unknown_method_and_precision(cli, mlp_onnx):
    assert_one_line(cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "int4"), 2, "int4")
    assert_one_line(cli("quantize", mlp_onnx / "mlp.onnx", "--precision", "int8", "--calib", "synthetic", "--method", "kl"), 2, "kl")


def test_large_calibration_file_is_memory_mapped(mlp_onnx, tmp_path):
    """6.3 GB of features (a sparse file), 16 samples read: peak memory stays far below the file size."""
    import subprocess
    import sys

    big = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(200_000, TOKENS, 128))
    del big
    # VmHWM, not ru_maxrss: the latter survives exec and would report pytest's own size after fork
    script = (
        "import re; from pathlib import Path; from mmexport import connectors; from mmexport.calibration import data;"
        "c = connectors.get('mlp'); cfg = c.config_from_dict(dict(vision_dim=128, llm_dim=8, tokens=64));"
        f"s = data.load(c.inputs(cfg), r'{tmp_path / 'big.npy'}', 16);"
        "peak = int(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1)) // 1024;"
        "print(len(s.samples), peak)"
    )
    count, peak_mb = map(int, subprocess.check_output([sys.executable, "-c", script], text=True).split())
    assert count == 16 and peak_mb < 1500
