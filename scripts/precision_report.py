"""Figures for docs/precision.md: per connector (default preset, random weights) and per synthetic
feature family, the fp16, int8 and fp8 variants' worst global and token-p1 cosine against the
fp32 PyTorch reference on held-out samples, size against fp32, the share of weight MACs in
int8/fp8, and what the search chose. A variant that found nothing is shown with the best
candidate's figures and "refused". Prints Markdown rows as it goes.

    python scripts/precision_report.py [--connectors mlp,qformer] [--families channels,band] [--samples 24]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

import mmexport
import mmexport.connectors
from mmexport.calibration.synthetic import FAMILIES
from mmexport.errors import MmexportError
from mmexport.record import record_path


def figures(path: Path) -> dict:
    """The installed variant's record, or the one kept in NAME.failed/."""
    failed = path.with_suffix(".failed") / (path.name + ".json")
    record = json.loads((record_path(path) if record_path(path).exists() else failed).read_text())
    rows = record["parity"]["rows"]
    q = record.get("quantization") or {}
    chosen = "" if not q.get("search") else f"alpha {q.get('smooth_alpha') or 'off'}, {q.get('method')}, {len(q.get('kept', {}))} kept"
    return {
        "cosine": min(r["cosine"] for r in rows),
        "token": min(r["token_cosine_p1"] for r in rows),
        "passed": record["parity"]["passed"],
        "size": record.get("size_ratio_vs_fp32"),
        "share": q.get("quantized_mac_share"),
        "chosen": chosen,
    }


def row(name: str, preset: str, family: str, precision: str, found: dict, seconds: float) -> str:
    share = "-" if found["share"] is None else f"{found['share']:.0%}"
    verdict = "pass" if found["passed"] else "refused"
    size = "-" if found["size"] is None else f"{found['size']:.2f}"
    return (
        f"| {name} ({preset}) | {family} | {precision} | {found['cosine']:.5f} | {found['token']:.4f} | {verdict} | "
        f"{size} | {share} | {found['chosen']} | {seconds:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connectors", default=",".join(mmexport.connectors.names()))
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--precisions", default="fp16,int8,fp8")
    parser.add_argument("--samples", type=int, default=24)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, ONNX Runtime {ort.__version__} CPU, mmexport {mmexport.__version__}\n")
    print("| connector | family | precision | cosine | token p1 | gate | size vs fp32 | MACs in int8/fp8 | search chose | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for name in args.connectors.split(","):
        preset = mmexport.connectors.get(name).default_preset
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = mmexport.export(name, output=Path(tmp) / "c.onnx").path
            for family in args.families.split(","):
                for precision in args.precisions.split(","):
                    out = Path(tmp) / f"c.{family}.{precision}.onnx"
                    options = mmexport.QuantizeOptions(calib=f"synthetic:{family}", samples=args.samples)
                    start = time.perf_counter()
                    try:
                        mmexport.quantize(fp32, precision, options, output=out)
                    except MmexportError:
                        pass  # the figures of the best candidate are in c....failed/
                    print(row(name, preset, family, precision, figures(out), time.perf_counter() - start), flush=True)


if __name__ == "__main__":
    main()
