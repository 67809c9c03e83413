"""Serving: the runtime API, Triton repositories (parsed with Triton's own protobuf schema), and a
real Triton server (PyTriton's tritonserver) on loopback, driven through tritonclient."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from google.protobuf import text_format
from support.checks import ort_run
from support.cli import assert_one_line
from support.references import save_llava_projector
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from mmexport import runtime
from mmexport.calibration.synthetic import outlier_features
from mmexport.serving.launch import free_port

VISION, LLM = 64, 96


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    from mmexport.cli import main

    folder = tmp_path_factory.mktemp("serve")
    save_llava_projector(folder / "w.safetensors", VISION, LLM, seed=21)
    assert main(["onnx", "-c", "mlp", "-w", str(folder / "w.safetensors"), "-o", str(folder / "mlp.onnx")]) == 0
    return folder / "mlp.onnx"


def features(batch, tokens, seed=0):
    return outlier_features((batch, tokens, VISION), seed=seed)


def test_runtime_matches_onnxruntime_and_is_thread_safe(mlp):
    import torch

    model = runtime.load(mlp)
    x = features(2, 9)
    (expected,) = ort_run(mlp, vision_features=torch.from_numpy(x))
    np.testing.assert_array_equal(model(x)["llm_embeds"], expected)
    np.testing.assert_array_equal(model(vision_features=x)["llm_embeds"], expected)
    inputs = [features(1 + i % 3, 5 + i, seed=i) for i in range(16)]
    want = [model(v)["llm_embeds"] for v in inputs]
    got = [None] * 16

    def work(i):
        got[i] = model(inputs[i])["llm_embeds"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize(
    "feeds,phrase",
    [
        ({"vision_features": np.zeros((2, 9, VISION), np.float64)}, "must be float32"),
        ({"vision_features": np.zeros((9, VISION), np.float32)}, "rank 3"),
        ({"vision_features": np.zeros((2, 9, VISION + 1), np.float32)}, f"must be {VISION}"),
        ({"vision_features": np.zeros((65, 9, VISION), np.float32)}, "'batch' = 65"),
        ({"pixels": np.zeros((2, 9, VISION), np.float32)}, "missing vision_features"),
        ({"vision_features": np.full((2, 9, VISION), np.nan, np.float32)}, "NaN or Inf"),
        ({"vision_features": np.full((2, 9, VISION), np.inf, np.float32)}, "NaN or Inf"),
    ],
)
def test_runtime_validates_inputs(mlp, feeds, phrase):
    with pytest.raises(runtime.InputError, match=phrase):
        runtime.load(mlp)(**feeds)


def parse_config(path):
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def test_triton_repository_for_onnx(cli, mlp, tmp_path):
    result = cli("triton", mlp, "--repo", tmp_path / "repo", "--name", "llava_proj", "--max-batch", "8", "--instances", "2")
    assert result.code == 0, result
    config = parse_config(tmp_path / "repo" / "llava_proj" / "config.pbtxt")
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
    assert list(config.input[0].dims) == [-1, VISION] and config.input[0].data_type == model_config_pb2.TYPE_FP32
    assert list(config.output[0].dims) == [-1, LLM]
    assert config.HasField("dynamic_batching")
    assert config.instance_group[0].count == 2 and config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert json.loads(config.parameters["mmexport"].string_value)["connector"] == "mlp"
    assert (tmp_path / "repo" / "llava_proj" / "1" / "model.onnx").read_bytes() == mlp.read_bytes()


def test_triton_repository_names_and_replacement(cli, mlp, tmp_path):
    """config.pbtxt comes from Triton's own schema: a name it cannot take is refused in one line;
    writing the same entry again replaces it whole, and nothing half-written is left."""
    repo = tmp_path / "repo"
    assert_one_line(cli("triton", mlp, "--repo", repo, "--name", 'proj"; platform: "x'), 2, "not a Triton model name")
    assert_one_line(cli("triton", mlp, "--repo", repo, "--name", "../escape"), 2, "not a Triton model name")
    assert cli("triton", mlp, "--repo", repo, "--name", "proj.v1-a", "--max-batch", "4").code == 0
    (repo / "proj.v1-a" / "stale.txt").write_text("from an older entry")
    assert cli("triton", mlp, "--repo", repo, "--name", "proj.v1-a", "--max-batch", "2").code == 0
    config = parse_config(repo / "proj.v1-a" / "config.pbtxt")
    assert config.name == "proj.v1-a" and config.max_batch_size == 2
    assert sorted(p.name for p in (repo / "proj.v1-a").iterdir()) == ["1", "config.pbtxt"]
    assert sorted(p.name for p in repo.iterdir()) == ["proj.v1-a"]


def test_triton_repository_for_engine_and_unbatched(cli, tmp_path, monkeypatch):
    from mmexport import connectors
    from mmexport.connectors.patch_merger import PatchMergerConfig

    monkeypatch.setitem(connectors.get("patch-merger").presets, "tiny", PatchMergerConfig("layernorm", 16, 24, 4, 64))
    assert cli("onnx", "-c", "mlp", "--preset", "llava-1.5-7b", "-o", tmp_path / "m.onnx", "--no-check").code == 0
    assert cli("trt", tmp_path / "m.onnx", "--shapes", "vision_features:1x576x1024:4x576x1024:8x576x1024").code == 0
    assert cli("triton", tmp_path / "m.engine", "--repo", tmp_path / "repo", "--kind", "gpu").code == 0
    config = parse_config(tmp_path / "repo" / "m" / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 8  # the engine profile's max
    assert list(config.input[0].dims) == [-1, 1024]  # tokens stay dynamic; the profile bounds them
    assert_one_line(cli("triton", tmp_path / "m.engine", "--repo", tmp_path / "repo", "--kind", "gpu", "--max-batch", "9"), 2, "1..8")
    assert_one_line(cli("triton", tmp_path / "m.engine", "--repo", tmp_path / "repo"), 2, "--kind gpu")
    assert cli("onnx", "-c", "patch-merger", "--preset", "tiny", "-o", tmp_path / "pm.onnx").code == 0
    assert cli("triton", tmp_path / "pm.onnx", "--repo", tmp_path / "repo").code == 0
    config = parse_config(tmp_path / "repo" / "pm" / "config.pbtxt")
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [-1, 16] and not config.HasField("dynamic_batching")


@pytest.fixture(scope="module")
def server(mlp):
    http, grpc, metrics = free_port(), free_port(), free_port()
    proc = subprocess.Popen(
        [
            "mmexport",
            "serve",
            str(mlp),
            "--name",
            "proj",
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
            "--max-batch",
            "8",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as `mmexport serve ... &` from a script: the shell starts it with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if client.is_server_ready() and client.is_model_ready("proj"):
                break
        except Exception:
            pass
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("server did not become ready in 120 s")
    yield {"proc": proc, "http": f"127.0.0.1:{http}", "grpc": f"127.0.0.1:{grpc}"}
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)


def http_infer(client, x, dtype="FP32"):
    inp = httpclient.InferInput("vision_features", list(x.shape), dtype)
    inp.set_data_from_numpy(x)
    return client.infer("proj", [inp]).as_numpy("llm_embeds")


def test_server_http_and_grpc_match_onnxruntime(server, mlp):
    import torch

    http = httpclient.InferenceServerClient(server["http"])
    grpc = grpcclient.InferenceServerClient(server["grpc"])
    for batch, tokens in [(1, 9), (3, 17), (8, 5)]:
        x = features(batch, tokens, seed=batch)
        (expected,) = ort_run(mlp, vision_features=torch.from_numpy(x))
        np.testing.assert_allclose(http_infer(http, x), expected, rtol=1e-5, atol=1e-5)
        inp = grpcclient.InferInput("vision_features", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        np.testing.assert_allclose(grpc.infer("proj", [inp]).as_numpy("llm_embeds"), expected, rtol=1e-5, atol=1e-5)
    assert http.is_server_live() and grpc.is_server_ready()


def test_server_rejects_bad_requests_and_keeps_serving(server):
    client = httpclient.InferenceServerClient(server["http"])
    bad = [
        (features(1, 9)[..., :-1], "FP32", "unexpected shape"),  # wrong feature width
        (features(1, 9).astype(np.float64), "FP64", "data-type"),  # wrong dtype
        (features(1, 3000), "FP32", "tokens"),  # beyond the connector's token range
    ]
    for x, dtype, phrase in bad:
        with pytest.raises(InferenceServerException, match=phrase):
            http_infer(client, x, dtype)
    with pytest.raises(InferenceServerException, match="missing"):
        client.infer("proj", [])
    assert http_infer(client, features(2, 9)).shape == (2, 9, LLM)


def test_server_under_load(server, mlp):
    """8 concurrent clients x 50 requests, mixed batch sizes: no errors, every output right."""
    import torch

    cases = [features(1 + i % 4, 16, seed=i) for i in range(8)]
    expected = [ort_run(mlp, vision_features=torch.from_numpy(x))[0] for x in cases]
    latencies, errors = [], []

    def client_loop(worker):
        client = httpclient.InferenceServerClient(server["http"])
        for i in range(50):
            case = (worker + i) % len(cases)
            start = time.perf_counter()
            try:
                out = http_infer(client, cases[case])
                if not np.allclose(out, expected[case], rtol=1e-5, atol=1e-5):
                    errors.append(f"mismatch in case {case}")
            except Exception as exc:  # counted, not raised: the test reports all of them
                errors.append(str(exc))
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert errors == []
    assert len(latencies) == 400
    p99 = sorted(latencies)[int(0.99 * len(latencies)) - 1]
    print(f"\nserve load: {400 / elapsed:.0f} req/s, p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms")


@pytest.mark.slow
def test_server_stops_cleanly_on_sigint(server):
    proc = server["proc"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert "server stopped" in proc.stderr.read()


def test_runtime_with_ids_and_masks(cli, tmp_path, tiny):
    """A connector with several inputs (InstructBLIP: features, token ids, mask): named calls work,
    and inputs that disagree on a shared axis get the clear error, not an ONNX Runtime crash."""
    name = tiny("instructblip")
    out = tmp_path / "ib.onnx"
    assert cli("onnx", "-c", name, "-p", "tiny", "-o", out).code == 0
    model = runtime.load(out)
    feeds = {
        "vision_features": np.random.default_rng(0).standard_normal((2, 9, 40), dtype=np.float32),
        "qformer_input_ids": np.array([[5, 6, 7], [8, 9, 0]], dtype=np.int64),
        "qformer_attention_mask": np.array([[1, 1, 1], [1, 1, 0]], dtype=np.int64),
    }
    assert model(**feeds)["llm_embeds"].shape == (2, 8, 24)
    with pytest.raises(runtime.InputError, match="'qformer_attention_mask' axis 'text_tokens' = 2 but 'qformer_input_ids' has 3"):
        model(**feeds | {"qformer_attention_mask": feeds["qformer_attention_mask"][:, :2]})
    with pytest.raises(runtime.InputError, match="must be int64"):
        model(**feeds | {"qformer_input_ids": feeds["qformer_input_ids"].astype(np.float32)})
