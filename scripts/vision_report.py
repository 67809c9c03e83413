"""Figures for the LLaVA-1.5 vision side at release size (CLIP ViT-L/14-336 + the 1024->4096 MLP,
random weights): export + gate wall time and peak RSS, ONNX Runtime against PyTorch eager and
torch.compile at batch 1 and 4, and fp16/int8/fp8 global and token-p1 cosine on real photos
(scikit-image's) through the model's own image processor. Writes the model folder first (only
the tower's and the projector's tensors: the LLM's are never read).

    python scripts/vision_report.py [--folder /tmp/llava-1.5-7b-vision] [--work /tmp/vision-work]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path

from mmexport.hf.release import llava15_vision as save_release_llava_vision
from mmexport.samples import write_photos


def timed(*args: str, cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS GB, stdout) of `mmexport ARGS`, measured by GNU time."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", "mmexport", *args], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:  # what mmexport said, and how it ended (a signal: killed for memory)
        said = proc.stderr.partition("\tCommand being timed")[0]
        ended = next((line for line in said.splitlines() if line.startswith("Command ")), "")
        raise SystemExit(f"mmexport {' '.join(args)} failed ({ended or proc.returncode}):\n{said[-2000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return seconds, peak_kb / 2**20, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, default=Path("/tmp/llava-1.5-7b-vision"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/vision-work"))
    parser.add_argument("--skip", default="", help="comma-separated steps to skip: export,bench,quantize")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    if not (args.folder / "config.json").exists():
        save_release_llava_vision(args.folder)
    args.work.mkdir(parents=True, exist_ok=True)
    photos = args.work / "photos"
    if not photos.exists():
        write_photos(photos)
    onnx = args.work / "llava15-vision.onnx"
    if "export" not in skip:
        seconds, peak, _ = timed("onnx", "--model", str(args.folder), "--vision-tower", "-o", str(onnx), cwd=args.work)
        record = json.loads(Path(str(onnx) + ".json").read_text())
        worst = max(r["max_rel"] for r in record["parity"]["rows"])
        print(f"export + gate: {seconds:.0f} s, peak RSS {peak:.1f} GB, ONNX {onnx.stat().st_size / 1e9:.2f} GB, worst max rel {worst:.2e}", flush=True)
    if "bench" not in skip:
        bench_json = args.work / "bench.json"
        timed(
            "bench",
            "--model",
            str(args.folder),
            "--vision-tower",
            "--backends",
            "torch,torch-compile,ort",
            "--batch",
            "1,4",
            "--warmup",
            "1",
            "--iters",
            "5",
            "--json",
            str(bench_json),
            cwd=args.work,
        )
        for row in json.loads(bench_json.read_text())["results"]:
            print(f"bench {row['backend']} batch {row['batch']}: median {row['median_ms']:.0f} ms, cosine {row['cosine']:.6f}", flush=True)
    if "quantize" not in skip:
        for precision in ("fp16", "int8", "fp8"):
            out = args.work / f"llava15-vision.{precision}.onnx"
            try:
                seconds, peak, _ = timed("quantize", str(onnx), "--precision", precision, "--calib", str(photos), "-o", str(out), cwd=args.work)
                record = json.loads(Path(str(out) + ".json").read_text())
            except SystemExit as failure:
                print(f"{precision}: {str(failure).splitlines()[-1]}", flush=True)
                continue
            rows = record["parity"]["rows"]
            print(
                f"{precision}: cosine {min(r['cosine'] for r in rows):.5f}, token p1 {min(r['token_cosine_p1'] for r in rows):.4f}, "
                f"{seconds:.0f} s, peak RSS {peak:.1f} GB, size {record['size_ratio_vs_fp32']:.2f}x, kept {len((record['quantization'] or {}).get('kept', {}))}",
                flush=True,
            )


if __name__ == "__main__":
    main()
