"""Throughput and p50/p99 latency of `mmexport serve` (real Triton via PyTriton, HTTP) under
8 concurrent clients x 50 requests with mixed batch sizes, next to the same calls through
`mmexport.runtime.load` in-process (8 threads).

    python scripts/serve_load.py [--connector mlp] [--preset llava-1.5-7b]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import tritonclient.http as httpclient

import mmexport
from mmexport import runtime
from mmexport.calibration.synthetic import outlier_features

CLIENTS, REQUESTS = 8, 50


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_load(call) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = [0]

    def loop(worker: int) -> None:
        for i in range(REQUESTS):
            start = time.perf_counter()
            try:
                call(worker, i)
            except Exception:
                errors[0] += 1
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(w,)) for w in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies, errors[0]


def report(label: str, elapsed: float, latencies: list[float], errors: int) -> None:
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * len(ordered)) - 1]
    print(f"| {label} | {len(latencies) / elapsed:.1f} | {statistics.median(ordered):.1f} | {p99:.1f} | {errors} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connector", default="mlp")
    parser.add_argument("--preset", default="llava-1.5-7b")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        artifact = mmexport.export(args.connector, args.preset, output=Path(tmp) / "model.onnx").path
        model = runtime.load(artifact)
        spec = model.inputs[0]
        dims = [model.record.config["tokens"] if d == "tokens" else d for d in spec.labels()[1:]]
        cases = [outlier_features((1 + i % 4, *dims), seed=i) for i in range(8)]  # batch 1..4
        print(f"{args.connector} ({args.preset}), inputs [1..4, {', '.join(map(str, dims))}], {CLIENTS} clients x {REQUESTS} requests\n")
        print("| path | requests/s | p50 ms | p99 ms | errors |")
        print("| --- | --- | --- | --- | --- |")
        report("runtime.load (in-process, 8 threads)", *run_load(lambda w, i: model(cases[(w + i) % 8])))
        http = port()
        proc = subprocess.Popen(
            ["mmexport", "serve", str(artifact), "--name", "m", "--http-port", str(http), "--grpc-port", str(port()), "--metrics-port", str(port())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            probe = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
            while True:
                try:
                    if probe.is_model_ready("m"):
                        break
                except Exception:
                    time.sleep(0.5)
            clients = [httpclient.InferenceServerClient(f"127.0.0.1:{http}", network_timeout=600) for _ in range(CLIENTS)]

            def call(worker: int, i: int) -> None:
                x = cases[(worker + i) % 8]
                inp = httpclient.InferInput(spec["name"], list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                clients[worker].infer("m", [inp])

            report("mmexport serve (Triton HTTP, dynamic batching)", *run_load(call))
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)


if __name__ == "__main__":
    main()
