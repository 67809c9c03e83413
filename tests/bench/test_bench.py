"""`mmexport bench`: real PyTorch, torch.compile and ONNX Runtime sessions timed side by side on
small connectors; the JSON a CI job reads, the plot, and clear errors before any work starts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support.cli import assert_one_line
from support.tiers import uses

KEYS = {
    "connector",
    "preset",
    "backend",
    "precision",
    "batch",
    "tokens",
    "sizes",
    "median_ms",
    "p90_ms",
    "throughput_per_s",
    "peak_mem_mb",
    "cosine",
    "token_cosine_p1",
}


@pytest.mark.slow
def test_bench_json_table_and_plot(cli, tmp_path, tiny):
    name = tiny("mlp")
    result = cli(
        "bench",
        "-c",
        name,
        "-p",
        "tiny",
        "--backends",
        "torch,ort,ort-fp16,ort-int8,ort-fp8,trt",
        "--batch",
        "1,3",
        "--tokens",
        "40",
        "--warmup",
        "1",
        "--iters",
        "3",
        "--threads",
        "1",
        "--json",
        tmp_path / "bench.json",
        "--plot",
        tmp_path / "bench.png",
    )
    assert result.code == 0, result
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["machine"]["threads"] == 1 and report["machine"]["cpu"]
    rows = {(r["backend"], r["batch"]): r for r in report["results"]}
    skipped = {s["backend"]: s["reason"] for s in report["skipped"]}
    ran = {"torch", "ort", "ort-fp16", "ort-int8", "ort-fp8"} | ({"trt"} - set(skipped))  # trt runs only where TensorRT and a GPU are
    assert set(rows) == {(b, n) for b in ran for n in (1, 3)}, skipped
    for row in report["results"]:
        assert KEYS <= set(row)
        if row["backend"] == "ort-fp8":  # emulated on a CPU: accuracy only
            assert row["median_ms"] is None and row["cosine"] > 0.99
            continue
        assert 0.9 < row["cosine"] <= 1.0 + 1e-9 and 0.0 < row["token_cosine_p1"] <= row["cosine"] + 0.1
        assert row["tokens"] == 40 and row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"]
        assert row["throughput_per_s"] == pytest.approx(row["batch"] * 1000 / row["median_ms"], rel=0.05)
    # each backend computed the connector, not just returned quickly
    assert rows["ort", 3]["cosine"] > 0.99999 and rows["ort-fp16", 3]["cosine"] > 0.999 and rows["ort-int8", 3]["cosine"] > 0.99
    if not torch.cuda.is_available():
        assert "CUDA GPU" in skipped["trt"] and "skipped trt" in result.stdout
    assert "x torch" in result.stdout
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_bench_torch_compile(cli, tmp_path, tiny):
    name = tiny("mlp")
    result = cli("bench", "-c", name, "-p", "tiny", "--backends", "torch,torch-compile", "--batch", "1,2", "--iters", "2", "--json", tmp_path / "b.json")
    assert result.code == 0, result
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert {r["backend"] for r in rows} == {"torch", "torch-compile"}
    assert all(r["cosine"] > 0.99999 for r in rows)


@pytest.mark.gpu
def test_bench_cuda_backends(cli, tmp_path, tiny):
    name = tiny("qformer")
    result = cli("bench", "-c", name, "-p", "tiny", "--backends", "torch,torch-cuda,torch-cuda-fp16", "--iters", "3", "--json", tmp_path / "b.json")
    assert result.code == 0, result
    rows = {r["backend"]: r for r in json.loads((tmp_path / "b.json").read_text())["results"]}
    assert rows["torch-cuda"]["cosine"] > 0.99999 and rows["torch-cuda-fp16"]["cosine"] > 0.999


@pytest.mark.parametrize(
    "args,code,phrase",
    [
        (["--backends", "torch,tensorflow"], 2, "unknown backend 'tensorflow'"),
        (["--batch", "1,x"], 2, "comma-separated list of integers"),
        (["--batch", "0"], 2, "--batch sizes must be >= 1"),
        (["--batch", "100"], 2, "axis 'batch' = 100 is out of range"),
        (["--tokens", "100000"], 2, "axis 'tokens' = 100000 is out of range"),
        (["--iters", "0"], 2, "--iters"),
        (["--json", "missing/b.json"], 2, "output folder does not exist"),
        (["--json", "b.txt"], 2, "must end in .json"),
        (["--plot", "b.jpg"], 2, "must end in .png"),
        (["--weights", "nope.safetensors"], 2, "nope.safetensors"),
    ],
)
def test_bench_bad_input(cli, tmp_path, monkeypatch, args, code, phrase):
    monkeypatch.chdir(tmp_path)
    assert_one_line(cli("bench", "-c", "mlp", *args), code, phrase)
    assert list(tmp_path.iterdir()) == []


def test_bench_tokens_on_a_fixed_grid(cli, tmp_path):
    assert_one_line(cli("bench", "-c", "c-abstractor", "--tokens", "576"), 2, "fixed number of tokens")


def test_bench_batch_on_a_packed_connector(cli):
    assert_one_line(cli("bench", "-c", "patch-merger", "--batch", "1,8"), 2, "no batch axis", "--tokens")


def test_bench_unknown_connector(cli):
    assert_one_line(cli("bench", "-c", "nope"), 2, "unknown connector 'nope'")


def test_batch_sets_crops_or_tiles_where_there_is_no_batch_axis(tiny):
    from mmexport import connectors
    from mmexport.subjects import ConnectorSubject

    def _sizes(connector, config, batch, tokens):
        return ConnectorSubject(connector, "tiny", config, None).sizes(batch, tokens)

    connector = connectors.get(tiny("h-reducer"))
    assert _sizes(connector, connector.preset("tiny"), 3, None)["crops"] == 3
    connector = connectors.get(tiny("pixel-shuffle"))
    assert _sizes(connector, connector.preset("tiny"), 3, None) == {"tiles": 3}
    connector = connectors.get(tiny("mlp"))
    assert _sizes(connector, connector.preset("tiny"), 3, None)["batch"] == 3


@uses("qwen2_5_vl")
def test_bench_an_artifact_of_a_vision_side(cli, artifacts, tmp_path):
    """`mmexport bench ARTIFACT.onnx` times the artifact as it is, on 448x448 photos through the
    folder's processor, and says the image sizes and patches it timed (a vision side has no
    --tokens: its sizes follow the images)."""
    from support.families import processor

    from mmexport.samples import photos

    result = cli("bench", artifacts("qwen2_5_vl", "vision"), "--backends", "torch,ort", "--batch", "1,2", "--iters", "2", "--json", tmp_path / "b.json")
    assert result.code == 0, result
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert {r["backend"] for r in rows} == {"torch", "ort"} and all(r["cosine"] > 0.99999 for r in rows)
    assert all(r["tokens"] is None for r in rows)
    _, rows_, cols = processor("qwen2_5_vl")(images=photos(1, sizes=((448, 448),)), return_tensors="np")["image_grid_thw"][0]
    said = f"1 image(s) {rows_ * 14}x{cols * 14} ({rows_ * cols} patches)"  # what the tiny processor makes of the photo
    assert {r["sizes"] for r in rows if r["batch"] == 1} == {said}
    assert said.split(" (")[0].split()[-1] in result.stdout.replace("\n", "") and "patches)" in result.stdout


def test_a_variant_slower_than_its_fp32_graph_is_flagged_and_a_faster_one_says_its_ratio():
    from mmexport.bench.run import BenchReport, Result
    from mmexport.report import bench_table

    def row(backend, precision, ms, batch=1):
        return Result("mlp", "tiny", backend, precision, "cpu", batch, 16, "1 x 16 tokens", ms, ms, 1000 / ms, 1.0, 1.0, 1.0)

    rows = [row("torch", "fp32", 10.0), row("ort", "fp32", 8.0), row("ort-int8", "int8", 12.0)]
    rows += [row("torch", "fp32", 40.0, 4), row("ort", "fp32", 32.0, 4), row("ort-int8", "int8", 12.0, 4)]
    report = BenchReport({"cpu": "x", "int8_instructions": "AVX512-VNNI"}, {"threads": 2, "iters": 1, "warmup": 0}, rows)
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(bench_table(report))
    shown = console.export_text()
    assert "SLOWER than ort fp32 (1.50x)" in shown and shown.count("SLOWER") == 1
    assert "0.38x ort fp32" in shown and "x (int8: AVX512-VNNI), 2 threads" in shown


def test_the_int8_instruction_set_is_the_best_the_cpu_flags_name():
    from mmexport.bench.measure import int8_instructions

    assert int8_instructions("fpu avx2 avx512f avx512_vnni amx_tile amx_int8") == "AMX"
    assert int8_instructions("fpu avx2 avx512f avx512_vnni") == "AVX512-VNNI"
    assert int8_instructions("fpu avx2 avx_vnni") == "AVX-VNNI"
    assert int8_instructions("fpu sse4_2 avx2") == "AVX2, no VNNI"
    assert int8_instructions("neon asimd") is None and int8_instructions(None) is None


@pytest.mark.slow
def test_bench_of_a_given_int8_variant_says_what_it_was_calibrated_on(cli, tmp_path, tiny):
    """A variant the user gives was calibrated when it was made: bench times it as it is and takes what
    it was calibrated on from its record, not from --calib's default. Its ratio to the fp32 graph
    beside it is shown."""
    fp32 = tmp_path / "m.onnx"
    assert cli("onnx", "-c", tiny("mlp"), "--preset", "tiny", "-o", fp32).code == 0
    features = np.random.default_rng(3).standard_normal((24, 16, 32)).astype(np.float32)
    features[..., 5] *= 8  # an outlier channel, as vision features have
    np.savez(tmp_path / "calib.npz", vision_features=features)
    notes = {}
    for calib in (tmp_path / "calib.npz", "synthetic"):
        assert cli("quantize", fp32, "--precision", "int8", "--target", "cpu", "--calib", calib, "--samples", "24").code == 0
        result = cli("bench", tmp_path / "m.int8.onnx", "--backends", "torch,ort,ort-int8", "--iters", "2", "--warmup", "1", "--json", tmp_path / "b.json")
        assert result.code == 0, result
        report = json.loads((tmp_path / "b.json").read_text())
        notes[str(calib)] = " ".join(report["notes"])
        assert "int8_instructions" in report["machine"]  # which kernels the int8 timing rests on
        shown = result.stdout.replace("\n", "")
        assert "x ort fp32" in shown or "SLOWER than ort fp32" in shown
    assert "synthetic" not in notes[str(tmp_path / "calib.npz")]
    assert "given variant was calibrated on synthetic features" in notes["synthetic"]
