"""`mmexport check` passes on every artifact mmexport installs, later and elsewhere: it reruns
the gate on the inputs the gate used (held-out samples kept beside a variant) from the
artifact's own tolerance; limits given override only themselves; engines say what they need."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from support.cli import assert_one_line
from support.references import save_llava_projector

from mmexport.calibration.synthetic import band_features

VISION, LLM, TOKENS = 256, 512, 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from mmexport.cli import main

    folder = tmp_path_factory.mktemp("check")
    save_llava_projector(folder / "w.safetensors", VISION, LLM, seed=5)
    assert main(["onnx", "-c", "mlp", "-w", str(folder / "w.safetensors"), "-o", str(folder / "m.onnx")]) == 0
    return folder


def check_json(cli, path, *extra):
    result = cli("check", path, "--json", *extra)
    return result.code, (json.loads(result.stdout) if result.stdout.strip() else result)


def test_check_passes_on_fp32_and_fp16(cli, exported):
    assert check_json(cli, exported / "m.onnx")[0] == 0
    assert cli("quantize", exported / "m.onnx", "--precision", "fp16").code == 0
    code, report = check_json(cli, exported / "m.fp16.onnx")
    assert code == 0 and report["tolerance"]["min_cosine"] == 0.9999  # the variant's own gate, not fp32's


def test_check_passes_on_a_synthetic_int8_variant(cli, exported, tmp_path):
    """It once failed (cosine 0.934): check fed Gaussian inputs, not the gate's samples."""
    out = tmp_path / "s.int8.onnx"
    assert cli("quantize", exported / "m.onnx", "--precision", "int8", "--calib", "synthetic", "--samples", "24", "-o", out).code == 0
    code, report = check_json(cli, out)
    assert code == 0, report
    assert report["inputs"] == "held-out calibration samples" and report["tolerance"]["max_rel"] is None


def test_check_passes_after_the_variant_is_copied_elsewhere(cli, exported, tmp_path):
    """A user's .npz calibration; the variant's files alone, in a fresh folder, check green."""
    np.savez(tmp_path / "feats.npz", vision_features=band_features((32, TOKENS, VISION), seed=1))
    made = tmp_path / "made"
    made.mkdir()
    out = made / "u.int8.onnx"
    assert cli("quantize", exported / "m.onnx", "--precision", "int8", "--calib", tmp_path / "feats.npz", "-o", out).code == 0
    (tmp_path / "feats.npz").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for path in made.iterdir():
        shutil.copy2(path, elsewhere / path.name)
    code, report = check_json(cli, elsewhere / "u.int8.onnx")
    assert code == 0, report
    record = json.loads((elsewhere / "u.int8.onnx.json").read_text())
    assert record["heldout"]["file"] == "u.int8.heldout.npz" and record["heldout"]["sha256"].startswith("sha256:")
    # loosening the cosine keeps the variant's own (ungated) max rel: it does not tighten it to fp32's 1e-4
    code, report = check_json(cli, elsewhere / "u.int8.onnx", "--min-cosine", "0.99")
    assert code == 0 and report["tolerance"] == {"max_rel": None, "min_cosine": 0.99, "min_token_cosine": 0.99, "float64_floor": True}
    # a tampered held-out file is refused, not silently used
    np.savez(elsewhere / "u.int8.heldout.npz", x=np.zeros(1))
    assert_one_line(cli("check", elsewhere / "u.int8.onnx"), 2, "sha256 differs")


def test_check_on_other_inputs(cli, exported, tmp_path):
    """--inputs checks an artifact on the user's own samples (e.g. another feature family)."""
    np.save(tmp_path / "other.npy", band_features((8, TOKENS, VISION), seed=9))
    code, report = check_json(cli, exported / "m.onnx", "--inputs", tmp_path / "other.npy")
    assert code == 0 and report["inputs"] == "samples from other.npy" and len(report["rows"]) == 8


def test_check_inputs_follow_the_runtimes_rule(cli, exported, tmp_path):
    """Samples `mmexport.load(...)` refuses (float64, NaN) are refused by `check --inputs` the same way."""
    import mmexport
    from mmexport.errors import InputError

    cases = {"must be float32, got float64": band_features((8, TOKENS, VISION), seed=9).astype(np.float64)}
    cases["NaN or Inf"] = band_features((8, TOKENS, VISION), seed=9)
    cases["NaN or Inf"][1, 5, 7] = np.nan
    runtime = mmexport.load(exported / "m.onnx")
    for phrase, array in cases.items():
        np.save(tmp_path / "bad.npy", array)
        assert_one_line(cli("check", exported / "m.onnx", "--inputs", tmp_path / "bad.npy"), 2, phrase)
        with pytest.raises(InputError, match=phrase):
            runtime(vision_features=array[:2])


def test_check_refuses_an_older_record(cli, exported, tmp_path):
    shutil.copy2(exported / "m.onnx", tmp_path / "m.onnx")
    record = json.loads((exported / "m.onnx.json").read_text()) | {"format": "mmexport.manifest/1"}
    (tmp_path / "m.onnx.json").write_text(json.dumps(record))
    assert_one_line(cli("check", tmp_path / "m.onnx"), 2, "older mmexport", "re-export")


def test_engine_check_without_a_gpu_is_one_line(cli, exported, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the GPU tests cover it")
    assert cli("trt", exported / "m.onnx", "-o", tmp_path / "m.engine").code == 0
    assert_one_line(cli("check", tmp_path / "m.engine", "--max-rel", "1e-2"), 2, "needs a CUDA GPU")


@pytest.mark.gpu
def test_engine_check_honours_limits_and_shapes(cli, exported, tmp_path):
    assert cli("trt", exported / "m.onnx", "-o", tmp_path / "m.engine", "--shapes", "vision_features:1x1x64:1x8x64:2x16x64").code == 0
    # the default parity shapes lie outside this small profile: a clear error, never an empty pass
    assert_one_line(cli("check", tmp_path / "m.engine"), 2, "no parity case fits")
    code, report = check_json(cli, tmp_path / "m.engine", "--shape", "batch=2,tokens=16", "--max-rel", "0.05", "--min-cosine", "0.999")
    assert code == 0 and report["tolerance"]["max_rel"] == 0.05 and report["tolerance"]["min_cosine"] == 0.999
