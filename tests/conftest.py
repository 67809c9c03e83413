"""Shared helpers: run the real CLI, and write checkpoints in the released models' layouts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from tiny_configs import TINY

from mmexport import connectors
from mmexport.cli import main


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def __repr__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


@pytest.fixture
def cli(capsys):
    """Run `mmexport ARGS` in this process (fast) and capture what it prints."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def tiered(values, fast):
    """Parameters for the fast tier (`-m "not slow"`): those in `fast`; the rest run in the full
    suite only (CI runs everything)."""
    return [value if value in fast else pytest.param(value, marks=pytest.mark.slow) for value in values]


def run_subprocess(*args: str, cwd: Path, timeout: float = 600) -> CliResult:
    """Run the installed console script as a user would."""
    env = dict(os.environ, COLUMNS="120")
    proc = subprocess.run(["mmexport", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def ort_run(path: Path, **inputs: torch.Tensor) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in inputs.items()})


def relative_error(actual: np.ndarray, expected: torch.Tensor) -> float:
    expected = expected.detach().double().numpy()
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def cosine(actual: np.ndarray, expected: torch.Tensor) -> float:
    a, e = actual.astype(np.float64).ravel(), expected.detach().double().numpy().ravel()
    return float(a @ e / (np.linalg.norm(a) * np.linalg.norm(e)))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def export(cli, tmp_path, connector, weights, *extra):
    """`mmexport onnx` with weights; returns the ONNX path and its manifest."""
    import json

    out = tmp_path / f"{connector}.onnx"
    result = cli("onnx", "--connector", connector, "--weights", weights, "-o", out, *extra)
    assert result.code == 0, result
    return out, json.loads((tmp_path / f"{connector}.onnx.json").read_text())


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny random model folders (bf16, with their processor), made once per test module."""
    from hf_models import save_model

    made: dict[str, tuple] = {}

    def get(model_type: str):
        if model_type not in made:
            folder = tmp_path_factory.mktemp(model_type.replace("-", ""))
            made[model_type] = (folder, save_model(model_type, folder))
        return made[model_type]

    return get


def start_encoder_service(artifact: Path, folder: Path, name: str = "vision", timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """`mmexport serve ARTIFACT --model FOLDER` on loopback, once its images endpoint is ready."""
    import signal
    import time

    import tritonclient.http as httpclient

    http, grpc, metrics = free_port(), free_port(), free_port()
    args = ["mmexport", "serve", str(artifact), "--model", str(folder), "--name", name]
    args += ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if client.is_model_ready(f"{name}_images") and client.is_model_ready("images"):
                return proc, f"127.0.0.1:{http}"
        except Exception:
            pass
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read() if proc.stderr else "the service exited")
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"the encoder service did not become ready in {timeout:.0f} s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def triton_backends(folder: Path) -> tuple[str, dict[str, str]]:
    """PyTriton's tritonserver binary and a backend folder with its Python backend, for running
    a repository mmexport wrote in the real server (environment: this interpreter's libpython)."""
    import shutil
    import sys
    import sysconfig

    import pytriton

    package = Path(pytriton.__file__).parent
    python = folder / "python"
    python.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(package / "tritonserver" / "backends" / "python" / name, python / name)
    stub = package / "tritonserver" / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
    shutil.copy2(stub, python / "triton_python_backend_stub")
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(package.parent / "nvidia_pytriton.libs")]
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(libs + [os.environ.get("LD_LIBRARY_PATH", "")]), PYTHONPATH=str(Path(__file__).parent))
    return str(package / "tritonserver" / "bin" / "tritonserver"), env


REFERENCE_ERRORS: dict[str, tuple[float, float]] = {}  # test -> (worst rel error, worst cosine)


def pytest_terminal_summary(terminalreporter):
    if REFERENCE_ERRORS:
        terminalreporter.section("ONNX vs original implementation (worst over shapes)")
        for test, (rel, cos) in sorted(REFERENCE_ERRORS.items()):
            terminalreporter.write_line(f"{test}: max rel {rel:.2e}, cosine {cos:.9f}")


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


def assert_one_line(result, code, *phrases):
    """Exit `code`, no traceback, exactly one 'error:' line on stderr that names `phrases`."""
    assert result.code == code, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error:"), result
    for phrase in phrases:
        assert phrase in lines[0], result


@pytest.fixture
def tiny(monkeypatch):
    def add(name: str) -> str:
        connector = connectors.get(name.replace("-v2", "") if name == "ldp-v2" else name)
        monkeypatch.setitem(connector.presets, "tiny", TINY[name])
        return connector.name

    return add


WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")


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
