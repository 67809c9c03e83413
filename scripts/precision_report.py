"""Figures for the precision variants: cosine of fp16 and int8 (each method) against the fp32
PyTorch reference on held-out outlier-heavy features, size ratio, share of weight MACs in int8,
and ONNX Runtime CPU latency of fp32 against int8 at batch 1. Prints a Markdown table.

    python scripts/precision_report.py [--connectors mlp,qformer] [--samples 48] [--iters 20]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import mmexport
import mmexport.connectors
import mmexport.errors
from mmexport.calibration import quantize
from mmexport.calibration.data import synthetic

RELEASE = {"mlp": "llava-1.5-7b", "qformer": "blip2-opt-2.7b"}
RECIPES = [  # (label, method, smooth alpha, dtype of what is not int8)
    ("int8 minmax + SmoothQuant 0.5 (default; fp16 elsewhere, for TensorRT)", "minmax", 0.5, "fp16"),
    ("int8 entropy + SmoothQuant 0.5", "entropy", 0.5, "fp16"),
    ("int8 percentile 99.99", "percentile", None, "fp16"),
    ("int8 percentile 99.99 + SmoothQuant 0.5", "percentile", 0.5, "fp16"),
    ("int8 minmax + SmoothQuant 0.5, fp32 elsewhere (for ONNX Runtime CPU)", "minmax", 0.5, "fp32"),
]


def latency_ms(path: Path, feed: dict[str, np.ndarray], iters: int) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connectors", default="mlp,qformer")
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--only", default="", help="run only the variants whose label contains this")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, ONNX Runtime {ort.__version__} CPU, default threads\n")
    print("| connector | variant | worst held-out cosine | gate | size vs fp32 | weight MACs in int8 | latency b=1 (ms) | vs fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.connectors.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            fp32 = mmexport.export(name, RELEASE[name], output=tmp / f"{name}.onnx").path
            connector = mmexport.connectors.get(name)
            config = connector.preset(RELEASE[name])
            features = synthetic(connector, config, args.samples)
            np.savez(tmp / "feats.npz", **{k: np.concatenate([s[k] for s in features.samples]) for k in features.samples[0]})
            feed = features.samples[-1]
            base = latency_ms(fp32, feed, args.iters)
            print(f"| {name} ({RELEASE[name]}) | fp32 | 1 (reference) | - | 1.00 | 0% | {base:.1f} | 1.00 |")
            variants = [("fp16", "fp16", None, None, None)] + [(label, "int8", *recipe) for label, *recipe in RECIPES]
            for index, (label, precision, method, alpha, high) in enumerate(variants):
                if args.only and args.only not in label:
                    continue
                out = tmp / f"{name}.{index}.onnx"
                try:
                    kwargs = {"method": method, "smooth_alpha": alpha, "high_precision": high} if precision == "int8" else {}
                    result = quantize(fp32, precision, calib=str(tmp / "feats.npz"), samples=args.samples, output=out, **kwargs)
                    manifest, passed, path = result.manifest, True, out
                except mmexport.errors.ParityError:
                    path = out.with_suffix(".failed") / out.name
                    import json

                    manifest, passed = json.loads(Path(str(path) + ".json").read_text()), False
                cosine = min(r["cosine"] for r in manifest["parity"]["rows"])
                share = manifest["quantization"].get("int8_mac_share", 0.0)
                ms = latency_ms(path, feed, args.iters)
                print(
                    f"| {name} ({RELEASE[name]}) | {label} | {cosine:.5f} | {'pass' if passed else 'FAIL'} | "
                    f"{manifest['size_ratio_vs_fp32']:.2f} | {share:.0%} | {ms:.1f} | {ms / base:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
