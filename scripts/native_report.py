"""Figures for a native-resolution vision side at release size (Qwen2.5-VL-7B's by default, ~670M
parameters; --model-type qwen3_5 or gemma4: their default vision configs), random weights, a bf16
folder shaped as released: export + gate wall time and peak RSS; the gate on one 448x448 photo
and on four photos of mixed sizes in one call; how time and memory grow with the patch count
(256, 1024, 4096); ONNX Runtime against PyTorch eager and torch.compile in one bench run (with
the time spent deriving the grid tensors); fp16 and int8 variants (photos through the folder's
processor) and a TensorRT-RTX fp16 engine for sm89.

    python scripts/native_report.py [--model-type qwen2_5_vl] [--folder DIR] [--work DIR] [--skip bench,int8,trt] [--batch 1,4] [--iters 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vision_report import timed  # noqa: E402  (a script beside this one)

from mmexport.hf.release import RELEASES  # noqa: E402
from mmexport.samples import photos, write_photos  # noqa: E402

MIXED = ((448, 448), (336, 560), (560, 336), (224, 224))  # (height, width)


def processor_inputs(folder: Path, onnx: Path, sizes: tuple[tuple[int, int], ...]) -> dict[str, np.ndarray]:
    """What the folder's processor returns for photos of `sizes`, by the artifact's input names."""
    from transformers import AutoImageProcessor

    import mmexport

    pictures = [p.resize((w, h)) for p, (h, w) in zip(photos(len(sizes)), sizes)]
    out = AutoImageProcessor.from_pretrained(folder)(images=pictures, return_tensors="np")
    return {s.name: np.asarray(out[s.name]).astype(s.dtype) for s in mmexport.load(onnx).inputs if s.name in out}


def square(patches: int) -> dict[str, np.ndarray]:
    side = int(patches**0.5)
    return {"pixel_values": np.random.default_rng(0).standard_normal((patches, 1176)).astype(np.float32), "image_grid_thw": np.array([[1, side, side]])}


def gate_on(onnx: Path, name: str, inputs: dict[str, np.ndarray], work: Path) -> str:
    np.savez(work / f"{name}.npz", **inputs)
    seconds, peak, out = timed("check", str(onnx), "--inputs", str(work / f"{name}.npz"), "--json", cwd=work)
    worst = max(r["max_rel"] for r in json.loads(out)["rows"])
    return f"{name} (pixel_values {list(inputs['pixel_values'].shape)}): check {seconds:.0f} s, peak RSS {peak:.1f} GB, max rel {worst:.2e}"


def runtime_growth(onnx: Path) -> list[str]:
    import mmexport
    from mmexport.bench.measure import resident_mb

    runtime = mmexport.load(onnx)
    lines = []
    for patches in (256, 1024, 4096):
        inputs = square(patches)
        before = resident_mb()
        runtime(**inputs)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            runtime(**inputs)
            times.append(time.perf_counter() - start)
        lines.append(f"runtime {patches} patches: {1000 * sorted(times)[1]:.0f} ms per call (ONNX Runtime CPU), RSS +{resident_mb() - before:.0f} MB")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-type", default="qwen2_5_vl", choices=sorted(RELEASES))
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--skip", default="")
    parser.add_argument("--batch", default="1,4", help="bench: images per call")
    parser.add_argument("--iters", default="5", help="bench: timed calls per backend")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    args.folder = args.folder or Path(f"/tmp/{args.model_type}-release-vision")
    args.work = args.work or Path(f"/tmp/{args.model_type}-native-work")
    if not (args.folder / "config.json").exists():
        RELEASES[args.model_type](args.folder)
    args.work.mkdir(parents=True, exist_ok=True)
    onnx = args.work / "vision.onnx"
    if "export" not in skip:
        seconds, peak, _ = timed("onnx", "--model", str(args.folder), "--vision-tower", "-o", str(onnx), cwd=args.work)
        record = json.loads(Path(str(onnx) + ".json").read_text())
        worst = max(r["max_rel"] for r in record["parity"]["rows"])
        print(f"export + gate: {seconds:.0f} s, peak RSS {peak:.1f} GB, ONNX {onnx.stat().st_size / 1e9:.2f} GB, worst max rel {worst:.2e}", flush=True)
    if "gate" not in skip:
        print(gate_on(onnx, "one-448", processor_inputs(args.folder, onnx, ((448, 448),)), args.work), flush=True)
        print(gate_on(onnx, "four-mixed", processor_inputs(args.folder, onnx, MIXED), args.work), flush=True)
        for patches in (256, 1024, 4096) if args.model_type == "qwen2_5_vl" else ():
            print(gate_on(onnx, f"square-{patches}", square(patches), args.work), flush=True)
    if "runtime" not in skip and args.model_type == "qwen2_5_vl":
        for line in runtime_growth(onnx):
            print(line, flush=True)
    if "bench" not in skip:
        bench_json = args.work / "bench.json"
        seconds, peak, _ = timed(
            "bench",
            "--model",
            str(args.folder),
            "--vision-tower",
            "--backends",
            "torch,torch-compile,ort",
            "--batch",
            args.batch,
            "--warmup",
            "1",
            "--iters",
            args.iters,
            "--json",
            str(bench_json),
            cwd=args.work,
        )
        report = json.loads(bench_json.read_text())
        print(f"bench run: {seconds:.0f} s, peak RSS {peak:.1f} GB", flush=True)
        for r in report["results"]:
            print(f"bench {r['backend']:14s} images {r['batch']}: {r['median_ms']:.0f} ms, +{r['peak_mem_mb']:.0f} MB, cosine {r['cosine']:.6f}", flush=True)
        for note in report["notes"]:
            print(f"bench note: {note}", flush=True)
    photo_folder = args.work / "photos"
    if not photo_folder.exists():
        write_photos(photo_folder)
    for precision in ("fp16", "int8"):
        if precision in skip:
            continue
        extra = ["--calib", str(photo_folder)] if precision == "int8" else []
        try:
            seconds, peak, out = timed("quantize", str(onnx), "--precision", precision, *extra, "--json", cwd=args.work)
        except SystemExit as refused:  # a refusal names its cause
            print(f"{precision}: refused: {str(refused)[:1500]}", flush=True)
            continue
        record = json.loads(out)
        rows = record["parity"]["rows"]
        print(
            f"{precision}: {seconds:.0f} s, peak RSS {peak:.1f} GB, worst cosine {min(r['cosine'] for r in rows):.6f}, kept {json.dumps(record['quantization'].get('kept_fp32'))[:300]}",
            flush=True,
        )
    if "trt" not in skip:
        seconds, peak, _ = timed("trt", str(args.work / "vision.fp16.onnx"), "--flavor", "tensorrt-rtx", "--arch", "sm89", cwd=args.work)
        print(f"TensorRT-RTX fp16 engine for sm89: {seconds:.0f} s, peak RSS {peak:.1f} GB", flush=True)


if __name__ == "__main__":
    main()
