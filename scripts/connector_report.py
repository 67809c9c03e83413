"""Export + parity gate at each connector's release preset (random weights): wall time, peak
memory of the `mmexport onnx` process, ONNX size and the gate's worst error. Markdown table.

    python scripts/connector_report.py [--connectors instructblip,idefics2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mmexport.connectors


def measure(name: str, folder: Path) -> dict:
    """Runs in a child of a fresh interpreter so RUSAGE_CHILDREN is this export's peak alone."""
    code = (
        "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
        f"r = subprocess.run(['mmexport', 'onnx', '-c', {name!r}, '-o', {str(folder / 'm.onnx')!r}, '--json'], capture_output=True, text=True); "
        "print(json.dumps({'code': r.returncode, 'seconds': time.perf_counter() - t, 'peak_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, 'err': r.stderr[-500:]}))"
    )
    result = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    if result["code"] == 0:
        record = json.loads((folder / "m.onnx.json").read_text())
        result |= {
            "preset": record["preset"],
            "max_rel": max(r["max_rel"] for r in record["parity"]["rows"]),
            "cosine": min(r["cosine"] for r in record["parity"]["rows"]),
            "shapes": len({json.dumps(r["shape"]) for r in record["parity"]["rows"]}),
            "mb": sum(p.stat().st_size for p in folder.glob("m.onnx*") if not p.name.endswith(".json")) / 2**20,
            "external": bool(record["external_data"]),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connectors", default=",".join(mmexport.connectors.names()))
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; `mmexport onnx -c C` (export + parity gate at the parity shapes), random weights\n")
    print("| connector | preset | wall s | peak RSS GB | ONNX MB | external data | parity shapes | worst max rel | worst cosine |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.connectors.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            r = measure(name, Path(tmp))
        if r["code"] != 0:
            print(f"| {name} | - | FAILED: {r['err'].strip().splitlines()[-1] if r['err'].strip() else r['code']} |", flush=True)
            continue
        print(
            f"| {name} | {r['preset']} | {r['seconds']:.1f} | {r['peak_kb'] / 2**20:.2f} | {r['mb']:.0f} | {'yes' if r['external'] else 'no'} | "
            f"{r['shapes']} | {r['max_rel']:.1e} | {r['cosine']:.8f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
