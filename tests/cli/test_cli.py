"""End-to-end runs of the CLI as users run it."""

from __future__ import annotations

import json

import onnx
import pytest
from support.cli import files_in, run_subprocess
from support.references import save_llava_projector


@pytest.fixture
def mlp_weights(tmp_path):
    path = tmp_path / "proj.safetensors"
    save_llava_projector(path, vision_dim=32, llm_dim=48)
    return path


@pytest.mark.slow
def test_readme_quickstart_default_qformer(tmp_path):
    """`mmexport onnx --connector qformer` works with nothing else, on release dims."""
    result = run_subprocess("onnx", "--connector", "qformer", cwd=tmp_path)
    assert result.code == 0, result
    assert files_in(tmp_path) == ["qformer-blip2-opt-2.7b.onnx", "qformer-blip2-opt-2.7b.onnx.json"]
    assert "random weights" in result.stderr
    assert "Traceback" not in result.stderr
    manifest = json.loads((tmp_path / "qformer-blip2-opt-2.7b.onnx.json").read_text())
    assert manifest["parity"]["passed"] and len(manifest["parity"]["rows"]) >= 3
    assert {r["shape"]["batch"] for r in manifest["parity"]["rows"]} >= {1, 2}
    assert manifest["weights"]["source"] == "random" and manifest["weights"]["seed"] == 0 and len(manifest["weights"]["fingerprint"]) == 5
    model = onnx.load(tmp_path / "qformer-blip2-opt-2.7b.onnx", load_external_data=False)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "tokens", 1408]
    out_dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == ["batch", 32, 2560]
    # `check` rebuilds the random-weight reference from the manifest alone
    check = run_subprocess("check", "qformer-blip2-opt-2.7b.onnx", "--json", cwd=tmp_path)
    assert check.code == 0, check
    assert json.loads(check.stdout)["passed"] is True


def test_list_shows_every_connector_with_systems(cli):
    result = cli("list", "--json")
    assert result.code == 0
    rows = {r["connector"]: r for r in json.loads(result.stdout)}
    assert {"linear", "mlp", "qformer"} <= set(rows)
    assert "BLIP-2" in rows["qformer"]["systems"]
    assert rows["mlp"]["presets"][:2] == ["llava-1.5-7b", "llava-1.5-13b"]
    assert set(rows["qformer"]["presets"]) == {"blip2-opt-2.7b", "blip2-opt-6.7b", "blip2-flan-t5-xl"}
    table = cli("list")
    assert table.code == 0 and "LLaVA-1.5" in table.stdout and "qformer" in table.stdout


def test_onnx_json_output_is_the_manifest(cli, tmp_path, mlp_weights):
    result = cli("onnx", "-c", "mlp", "-w", mlp_weights, "-o", tmp_path / "m.onnx", "--json")
    assert result.code == 0, result
    manifest = json.loads(result.stdout)
    assert manifest == json.loads((tmp_path / "m.onnx.json").read_text())
    assert manifest["inputs"][0]["dynamic_axes"]["0"]["name"] == "batch"
    assert manifest["inputs"][0]["dynamic_axes"]["1"]["name"] == "tokens"
    assert manifest["weights"]["digest"].startswith("sha256:")
    assert manifest["sha256"].startswith("sha256:") and manifest["kind"] == "onnx"
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest["tools"])


def test_check_fails_on_a_tampered_graph(cli, tmp_path, mlp_weights):
    out = tmp_path / "m.onnx"
    assert cli("onnx", "-c", "mlp", "-w", mlp_weights, "-o", out).code == 0
    model = onnx.load(out)
    init = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    data = bytearray(init.raw_data)
    data[:64] = bytes(64)  # zero a few weights: the graph still runs, the numbers are wrong
    init.raw_data = bytes(data)
    onnx.save(model, out)
    result = cli("check", out)
    assert result.code == 1
    assert "parity failed" in result.stderr and "Traceback" not in result.stderr


def test_check_refuses_other_weights(cli, tmp_path, mlp_weights):
    out = tmp_path / "m.onnx"
    assert cli("onnx", "-c", "mlp", "-w", mlp_weights, "-o", out).code == 0
    other = tmp_path / "other.safetensors"
    save_llava_projector(other, vision_dim=32, llm_dim=48, seed=9)
    result = cli("check", out, "--weights", other)
    assert result.code == 2 and "differ" in result.stderr


def test_failed_gate_installs_nothing_and_keeps_the_old_artifact(cli, tmp_path, mlp_weights):
    out = tmp_path / "m.onnx"
    assert cli("onnx", "-c", "mlp", "-w", mlp_weights, "-o", out).code == 0
    before = out.read_bytes()
    result = cli("onnx", "-c", "mlp", "-w", mlp_weights, "-o", out, "--max-rel", "1e-12", "--opset", "19")
    assert result.code == 1, result
    assert "parity failed" in result.stderr and "max_rel" in result.stderr
    assert out.read_bytes() == before
    assert json.loads((tmp_path / "m.onnx.json").read_text())["opset"] == 18
    kept = tmp_path / "m.failed"
    assert sorted(p.name for p in kept.iterdir()) == ["m.onnx", "m.onnx.json"]
    assert json.loads((kept / "m.onnx.json").read_text())["parity"]["passed"] is False
    assert files_in(tmp_path) == ["m.failed", "m.onnx", "m.onnx.json", "proj.safetensors"]


def test_no_check_skips_the_gate(cli, tmp_path, mlp_weights):
    result = cli("onnx", "-c", "mlp", "-w", mlp_weights, "-o", tmp_path / "m.onnx", "--no-check", "--json")
    assert result.code == 0
    assert json.loads(result.stdout)["parity"] is None


def test_version_and_help(cli):
    assert cli("--version").code == 0
    for command, words in (((), "vision side"), (("onnx",), "vision side"), (("bench",), "vision side")):
        shown = cli(*command, "--help")
        assert shown.code in (0, 2) and words in shown.stdout and "model folder" in shown.stdout, shown


@pytest.mark.slow  # over 10 s on 2 cores: the full suite (CI) runs it, the fast tier stays under 4 min
def test_tables_keep_every_column_when_piped(tmp_path):
    """Piped (`| tee`, CI logs), the parity table is not cut to 80 columns."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = __import__("subprocess").run(
        ["mmexport", "onnx", "-c", "mlp", "--preset", "llava-1.5-7b", "-o", str(tmp_path / "m.onnx")], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "max abs" in line)
    assert all(column in header for column in ("shape", "output", "max abs", "max rel", "cosine", "token p1")), header
    assert "…" not in proc.stdout
