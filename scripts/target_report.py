"""Figures for docs/precision.md, "Variants fit their target": one connector's fp32 graph and its
int8 variant made for each target (`--target tensorrt`: fp16 around the int8 layers;
`--target cpu`: fp32 around them), timed side by side on ONNX Runtime's CPU provider
(interleaved rounds, medians), with each variant's held-out cosine from its record.

    python scripts/target_report.py [--connector mlp] [--batch 1] [--iters 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import mmexport
from mmexport.bench.measure import interleaved
from mmexport.calibration.synthetic import features
from mmexport.parity.runners import ort_session
from mmexport.record import read, record_path


def timed_sessions(paths: dict[str, Path], feeds: dict[str, np.ndarray], iters: int) -> dict[str, float]:
    sessions = {name: ort_session(path) for name, path in paths.items()}
    calls = {name: (lambda s=session: s.run(None, feeds)) for name, session in sessions.items()}
    return {name: timing.median_ms for name, timing in interleaved(calls, warmup=2, iters=iters).items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connector", default="mlp")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = mmexport.export(args.connector, output=Path(tmp) / "c.onnx").path
        paths = {"fp32": fp32}
        for target in ("tensorrt", "cpu"):
            options = mmexport.QuantizeOptions(calib="synthetic", samples=24, target=target)
            paths[f"int8 --target {target}"] = mmexport.quantize(fp32, "int8", options, output=Path(tmp) / f"c.{target}.onnx").path
        spec = read(fp32).inputs[0]  # the features; the release token count (each axis at its opt)
        sizes = {axis.name: axis.opt for axis in spec.axes.values()} | {"batch": args.batch}
        feeds = {spec.name: features("channels", spec.shape(sizes), seed=7)}
        medians = timed_sessions(paths, feeds, args.iters)
        print(f"| variant | median ms (batch {args.batch}) | vs fp32 | held-out cosine |")
        print("| --- | --- | --- | --- |")
        for name, path in paths.items():
            rows = json.loads(record_path(path).read_text())["parity"]["rows"]
            cosine = "1 (reference)" if name == "fp32" else f"{min(r['cosine'] for r in rows):.5f}"
            print(f"| {name} | {medians[name]:.1f} | {medians[name] / medians['fp32']:.2f} | {cosine} |")


if __name__ == "__main__":
    main()
