"""The encoder service (`mmexport serve ARTIFACT --model DIR`, real Triton via PyTriton, loopback)
under N concurrent clients, each sending R requests of one photo in turn: throughput, p50/p99
latency, nothing lost, every answer its own image's and in request order per client; then the
bad-input list, each answered with its own error while serving goes on.

    python scripts/encoder_load.py [--model-type qwen2_5_vl] [--clients 8] [--requests 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import mmexport
from mmexport.client import EncoderError, request
from mmexport.hf.tiny import save_tiny
from mmexport.samples import bad_images, photos, png
from mmexport.serving.launch import start_service


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-type", default="qwen2_5_vl")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mmexport-encoder-load-"))
    save_tiny(args.model_type, work / "model")  # a tiny random model of the type, as mmexport's coverage table makes them
    mmexport.make(model=work / "model", vision_tower=True, output=work / "v.onnx")
    pictures = [png(p.resize((w, h))) for p, (h, w) in zip(photos(6), ((448, 448), (336, 560), (560, 336), (224, 224), (448, 224), (224, 448)))]
    proc, url = start_service(work / "v.onnx", work / "model")
    try:
        alone = [request(url, [p])[0]["embeddings"] for p in pictures]

        def client(k: int) -> tuple[list[float], int]:
            times, wrong = [], 0
            for i in range(args.requests):
                image = (k + i) % len(pictures)
                start_time = time.perf_counter()
                got = request(url, [pictures[image]])[0]["embeddings"]
                times.append(time.perf_counter() - start_time)
                wrong += int(got.shape != alone[image].shape or not np.allclose(got, alone[image], atol=1e-5))
            return times, wrong

        begin = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(client, range(args.clients)))
        wall = time.perf_counter() - begin
        latencies = sorted(t for times, _ in results for t in times)
        total, wrong = len(latencies), sum(w for _, w in results)
        print(f"{args.clients} clients x {args.requests} requests of one photo (448x448 and mixed sizes, {args.model_type} tiny, ONNX Runtime CPU):")
        print(
            f"  {total} answered, {wrong} wrong or out of order; {total / wall:.1f} images/s; p50 {1000 * latencies[total // 2]:.0f} ms, p99 {1000 * latencies[int(total * 0.99) - 1]:.0f} ms"
        )
        for phrase, data in bad_images().items():
            try:
                request(url, [data])
                print(f"  bad input '{phrase}': ANSWERED (unexpected)")
            except EncoderError as exc:
                print(f"  bad input ({len(data)} bytes): {exc}")
        print(f"  still serving after them: {request(url, [pictures[0]])[0]['embeddings'].shape}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
