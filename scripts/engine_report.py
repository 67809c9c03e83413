"""Build time and engine size with TensorRT-RTX (no GPU needed) for release presets at fp16,
int8 and fp8 (fp8 engines target Ada and newer only). Prints a Markdown table.

    python scripts/engine_report.py [--connectors mlp,qformer] [--samples 16]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mmexport

RELEASE = {"mlp": "llava-1.5-7b", "qformer": "blip2-opt-2.7b"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connectors", default="mlp,qformer")
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()
    print("| connector | precision | targets | build (s) | engine (MB) | size vs fp16 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.connectors.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = mmexport.export(name, RELEASE[name], output=Path(tmp) / f"{name}.onnx").path
            sizes = {}
            for precision in ("fp16", "int8", "fp8"):
                # fp8 on the massive-activation family: the one it is for (the Q-Former refuses it on `channels`)
                calib = {"fp16": None, "int8": "synthetic", "fp8": "synthetic:massive"}[precision]
                variant = mmexport.quantize(fp32, precision, mmexport.QuantizeOptions(calib=calib, samples=args.samples)).path
                info = mmexport.build_engine(variant, "tensorrt-rtx").record.engine
                sizes[precision] = info.engine_bytes
                ratio = f"{sizes[precision] / sizes['fp16']:.2f}" if precision != "fp16" else "-"
                targets = ", ".join(info.targets)
                print(f"| {name} ({RELEASE[name]}) | {precision} | {targets} | {info.build_seconds:.1f} | {sizes[precision] / 1e6:.1f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
