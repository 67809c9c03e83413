"""The whole vision side as one graph (`--vision-tower`) through every stage: calibrated on real
photos through the model's own image processor, checked, built into an engine, served; and what
a features graph or a missing --model refuses. Per-family parity: test_families.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.tiers import uses

from mmexport.samples import write_photos


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    write_photos(folder)
    return folder


@pytest.mark.slow
@uses("llava")
def test_vision_side_on_photos_every_stage(cli, tiny_models, photos, tmp_path):
    """LLaVA's vision side: fp16, int8 and fp8 calibrated on real photos through the model's own
    processor; check, a TensorRT-RTX fp16 engine for sm89, a Triton entry, bench."""
    folder, _ = tiny_models("llava")
    fp32 = tmp_path / "v.onnx"
    assert cli("onnx", "--model", folder, "--vision-tower", "-o", fp32).code == 0
    for precision in ("fp16", "int8", "fp8"):
        # a tiny random tower: loose gates; the flow (processor, search, gate, record) is under test
        result = cli("quantize", fp32, "--precision", precision, "--calib", photos, "--min-cosine", "0.99", "--min-token-cosine", "0.9", "--json")
        assert result.code == 0, result
        record = json.loads(result.stdout)
        assert record["parity"]["inputs"] == "held-out calibration samples"
        assert precision == "fp16" or record["quantization"]["calibration"]["source"] == str(photos.resolve())
        assert cli("check", tmp_path / f"v.{precision}.onnx").code == 0
    built = cli("trt", tmp_path / "v.fp16.onnx", "--flavor", "tensorrt-rtx", "--arch", "sm89", "-o", tmp_path / "v.engine", "--json")
    assert built.code == 0, built
    assert json.loads(built.stdout)["engine"]["profiles"][0]["pixel_values"]["max"][1:] == [3, 28, 28]
    assert cli("triton", fp32, "--repo", tmp_path / "repo", "--name", "vision").code == 0
    bench = cli("bench", "--model", folder, "--vision-tower", "--backends", "torch,ort", "--batch", "1,2", "--iters", "2", "--json", tmp_path / "b.json")
    assert bench.code == 0, bench
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert {r["backend"] for r in rows} == {"torch", "ort"} and all(r["cosine"] > 0.99999 for r in rows)


@uses("llava")
def test_images_for_a_features_graph_are_refused(cli, tiny_models, photos, tmp_path):
    from support.cli import assert_one_line

    folder, _ = tiny_models("llava")
    assert cli("onnx", "--model", folder, "-o", tmp_path / "c.onnx").code == 0
    assert_one_line(cli("quantize", tmp_path / "c.onnx", "--precision", "int8", "--calib", photos), 2, "holds images", "--vision-tower")


def test_vision_side_needs_a_model(cli, tmp_path):
    from support.cli import assert_one_line

    assert_one_line(cli("onnx", "-c", "mlp", "--vision-tower", "-o", tmp_path / "x.onnx"), 2, "--vision-tower", "--model")
    assert not list(tmp_path.iterdir())


def test_vision_side_pixels_are_plausible():
    from mmexport.calibration.synthetic import generated_pixels

    pixels = generated_pixels((2, 3, 28, 28), seed=0)
    assert pixels.shape == (2, 3, 28, 28) and -2.0 <= pixels.min() < pixels.max() <= 2.0
    assert not np.array_equal(pixels[0], pixels[1])


@pytest.mark.slow
def test_release_size_llava15_vision_side(tmp_path):
    """CLIP ViT-L/14-336 + the MLP (~330M parameters): one 1.25 GB file (under 2 GB: no external
    data), gated at batch 1, 2 and 3. Time and peak memory: scripts/vision_report.py."""
    from support.cli import run_subprocess

    from mmexport.hf.release import llava15_vision as save_release_llava_vision

    save_release_llava_vision(tmp_path / "llava")
    result = run_subprocess("onnx", "--model", tmp_path / "llava", "--vision-tower", "-o", tmp_path / "v.onnx", cwd=tmp_path, timeout=1200)
    assert result.code == 0, result
    record = json.loads((tmp_path / "v.onnx.json").read_text())
    assert record["inputs"][0]["shape"] == ["batch", 3, 336, 336] and record["outputs"][0]["shape"] == ["batch", 576, 4096]
    assert record["external_data"] is None and 1.2e9 < (tmp_path / "v.onnx").stat().st_size < 1.3e9
    assert record["parity"]["passed"] and len(record["parity"]["rows"]) == 3
