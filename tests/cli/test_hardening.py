"""Interrupted runs leave nothing behind; exports are deterministic; random valid shapes keep the
gate green and random invalid ones get the clear error (property-based, hypothesis)."""

from __future__ import annotations

import signal
import subprocess
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.tiny_connectors import TINY

from mmexport import connectors, runtime
from mmexport.connectors.loading import build_module
from mmexport.parity import OrtRunner, TorchRunner, run_gate
from mmexport.record import ArtifactRecord, WeightsRecord, record_path
from mmexport.subjects import ConnectorSubject


def started_from_a_script(args):
    """As `mmexport ... &` from a shell script: SIGINT inherited as ignored."""
    return subprocess.Popen(args, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def wait_for_staging(folder, proc, timeout=60):
    """Until the command has started writing (its hidden staging folder exists)."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if any(p.name.startswith(".mmexport-staging-") for p in folder.iterdir()):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_killing_onnx_export_leaves_nothing(tmp_path, sig):
    proc = started_from_a_script(["mmexport", "onnx", "-c", "qformer", "-o", str(tmp_path / "q.onnx")])
    assert wait_for_staging(tmp_path, proc), "the export never started writing"
    time.sleep(1.0)
    proc.send_signal(sig)
    code, stderr = proc.wait(timeout=60), proc.stderr.read()
    assert code == 130 and "interrupted" in stderr, stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_killing_quantize_leaves_nothing(tmp_path, sig):
    assert subprocess.run(["mmexport", "onnx", "-c", "mlp", "-o", str(tmp_path / "m.onnx"), "--no-check"], capture_output=True).returncode == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = started_from_a_script(["mmexport", "quantize", str(tmp_path / "m.onnx"), "--precision", "int8", "--calib", "synthetic", "--samples", "64"])
    assert wait_for_staging(tmp_path, proc), "quantize never started writing"
    time.sleep(1.0)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def wait_for_library(proc: subprocess.Popen, name: str, timeout: float = 300) -> bool:
    """Until the process has mapped a shared library (its imports are behind it), or it ended."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if name in open(f"/proc/{proc.pid}/maps").read():
                return True
        except OSError:
            return False
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def qformer_onnx(tmp_path_factory):
    """A graph whose TensorRT-RTX build takes long enough (about 8 s here) to interrupt."""
    pytest.importorskip("tensorrt_rtx")
    folder = tmp_path_factory.mktemp("trt-kill")
    assert subprocess.run(["mmexport", "onnx", "-c", "qformer", "-o", str(folder / "q.onnx"), "--no-check"], capture_output=True).returncode == 0
    return folder / "q.onnx"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_killing_trt_build_leaves_nothing(tmp_path, qformer_onnx, sig):
    onnx_path = tmp_path / "q.onnx"
    onnx_path.symlink_to(qformer_onnx)
    (tmp_path / "q.onnx.json").symlink_to(qformer_onnx.with_suffix(".onnx.json"))
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.Popen(["mmexport", "trt", str(onnx_path), "--flavor", "tensorrt-rtx"], stderr=subprocess.PIPE, text=True)
    assert wait_for_library(proc, "libtensorrt_rtx"), "TensorRT-RTX was never loaded"
    time.sleep(2.0)  # past loading, into the parse and the build (however loaded the machine is)
    assert proc.poll() is None, "the build ended before it could be interrupted"
    proc.send_signal(sig)
    code, stderr = proc.wait(timeout=120), proc.stderr.read()
    assert code == 130 and "interrupted" in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_export_is_deterministic(tmp_path):
    from mmexport.cli import main

    for name in ("a", "b"):
        assert main(["onnx", "-c", "qformer", "--preset", "blip2-opt-2.7b", "-o", str(tmp_path / f"{name}.onnx"), "--no-check"]) == 0
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def _tiny(name):
    key = name
    connector = connectors.get("ldp" if name == "ldp-v2" else name)
    return connector, TINY[key]


def _axes(connector, config):
    return {a.name: a for spec in connector.inputs(config) for a in spec.axes.values()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Tiny fp32 exports of every connector (module, config, path), made once."""
    from mmexport.exporter.torch_to_onnx import export_module

    made = {}
    folder = tmp_path_factory.mktemp("prop")
    for name in TINY:
        connector, config = _tiny(name)
        module = build_module(connector, config)
        path = folder / f"{name}.onnx"
        example = ConnectorSubject(connector, "tiny", config, None).example()
        export_module(module, connector.inputs(config), connector.outputs(config), example, path, name=name)
        made[name] = (connector, config, module, path)
    return made


def valid_sizes(axis):
    # Keep sizes small for speed: the property is about shapes, not scale.
    top = min(axis.max, 3 * axis.opt, 64 * axis.multiple_of)
    return st.integers(-(-axis.min // axis.multiple_of), top // axis.multiple_of).map(lambda k: k * axis.multiple_of)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TINY))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_valid_shapes_keep_the_gate_green(exported, name, data):
    connector, config, module, path = exported[name]
    sizes = {n: data.draw(valid_sizes(a), label=n) for n, a in _axes(connector, config).items()}
    reference = TorchRunner(module, [s.name for s in connector.inputs(config)], [s.name for s in connector.outputs(config)])
    report = run_gate(OrtRunner(path), reference, ConnectorSubject(connector, "tiny", config, None).cases([sizes]), connector.tolerance)
    assert report.passed, report.failure()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TINY))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_invalid_shapes_get_the_clear_error(exported, name, data, tmp_path_factory):
    connector, config, module, path = exported[name]
    if not record_path(path).exists():  # the runtime reads the record; write the one the export would
        ArtifactRecord("onnx", path.name, connector.name, "tiny", {}, WeightsRecord(), connector.inputs(config), connector.outputs(config)).write(
            record_path(path)
        )
    model = runtime.load(path)
    spec = connector.inputs(config)[0]
    opt = {n: a.opt for n, a in _axes(connector, config).items()}
    feeds = {k: v.numpy() for k, v in connector.dummy_inputs(config, opt).items()}  # valid, but for one input
    shape = list(spec.shape(opt))
    i = data.draw(st.integers(0, len(shape) - 1), label="axis")
    axis = spec.dims[i]
    if isinstance(axis, int):
        shape[i] = data.draw(st.integers(1, 2 * axis).filter(lambda v: v != axis), label="size")
    else:
        bad = st.integers(axis.max + 1, axis.max + 50)
        if axis.multiple_of > 1:
            bad = bad | st.integers(axis.min, axis.max).filter(lambda v: v % axis.multiple_of)
        shape[i] = data.draw(bad, label="size")
    with pytest.raises(runtime.InputError):
        model(**feeds | {spec.name: np.zeros(shape, dtype=np.float32)})
