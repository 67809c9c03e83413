"""Where a CPU's time goes in mmexport's artifacts: ONNX Runtime's profiler (top op types, share of
the run) and the graph its optimizer leaves (which quantized MatMuls it fused, how many
DequantizeLinear still run per call) for each artifact, and torch's profiler over transformers'
eager model of the same folder. One photo through the folder's processor.

    python scripts/cpu_profile.py --folder DIR ARTIFACT.onnx [ARTIFACT.int8.onnx ...] [--size 448] [--calls 3]
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FUSED = ("MatMulIntegerToFloat", "QGemm", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulInteger", "QLinearConv", "ConvInteger")


def graph_feeds(artifact: Path, folder: Path, size: int) -> dict[str, np.ndarray]:
    """The graph's own inputs for one size x size photo: the processor's tensors, derived as the runtime does."""
    from transformers import AutoImageProcessor

    import mmexport
    from mmexport.runtime import validate
    from mmexport.samples import photos

    runtime = mmexport.load(artifact)
    out = AutoImageProcessor.from_pretrained(folder)(images=[photos(1)[0].resize((size, size))], return_tensors="np")
    given = {s.name: np.asarray(out[s.name]).astype(s.dtype) for s in runtime.inputs if s.name in out}
    return runtime.record.derivation(validate(runtime.inputs, given))


def ort_profile(artifact: Path, feeds: dict[str, np.ndarray], calls: int) -> tuple[float, list[tuple[str, float]], collections.Counter]:
    """(median ms per call, [(op type, share of op time)], op types of the optimized graph)."""
    import onnx
    import onnxruntime as ort

    work = Path(tempfile.mkdtemp())
    options = ort.SessionOptions()
    options.enable_profiling, options.profile_file_prefix = True, str(work / "profile")
    options.optimized_model_filepath = str(work / "optimized.onnx")
    session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in names}
    session.run(None, feeds)  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(1000 * (time.perf_counter() - start))
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]
    total = sum(by_op.values()) or 1
    optimized = onnx.load(str(work / "optimized.onnx"), load_external_data=False)
    return sorted(times)[len(times) // 2], [(op, us / total) for op, us in by_op.most_common(10)], collections.Counter(n.op_type for n in optimized.graph.node)


def eager_reference(folder: Path, size: int) -> tuple[Any, dict[str, Any]]:
    """transformers' get_image_features, eager, fp32 (the gate's reference), and what the folder's
    processor makes of one size x size photo, as numpy arrays in the reference's input order."""
    from transformers import AutoImageProcessor

    from mmexport.hf.subject import side_part
    from mmexport.samples import photos

    subject = side_part(folder)
    reference, _ = subject.build()
    out = AutoImageProcessor.from_pretrained(folder)(images=[photos(1)[0].resize((size, size))], return_tensors="np")
    return reference, {s.name: np.asarray(out[s.name]) for s in subject.inputs if s.name in out}


def torch_profile(folder: Path, size: int, calls: int) -> tuple[float, list[tuple[str, float]]]:
    """(median ms per call, top ops) of transformers' get_image_features, eager, fp32: the gate's reference."""
    import torch

    reference, given = eager_reference(folder, size)
    tensors = [torch.from_numpy(x) for x in given.values()]
    with torch.inference_mode():
        reference(*tensors)
        times = []
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                start = time.perf_counter()
                reference(*tensors)
                times.append(1000 * (time.perf_counter() - start))
    leaf = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in leaf) or 1
    top = sorted(leaf, key=lambda e: -e.self_cpu_time_total)[:10]
    return sorted(times)[len(times) // 2], [(e.key, e.self_cpu_time_total / total) for e in top]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts", type=Path, nargs="+")
    parser.add_argument("--folder", type=Path, required=True, help="the model folder the artifacts were exported from")
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--skip-torch", action="store_true")
    args = parser.parse_args()
    feeds = graph_feeds(args.artifacts[0], args.folder, args.size)
    if not args.skip_torch:
        ms, top = torch_profile(args.folder, args.size, args.calls)
        print(f"torch eager: {ms:.0f} ms per call; top ops: " + ", ".join(f"{op} {share:.0%}" for op, share in top), flush=True)
    for artifact in args.artifacts:
        ms, top, ops = ort_profile(artifact, feeds, args.calls)
        quantized = {op: ops[op] for op in FUSED if ops[op]}
        print(f"{artifact.name}: {ms:.0f} ms per call; top ops: " + ", ".join(f"{op} {share:.0%}" for op, share in top), flush=True)
        print(
            f"  optimized graph: {sum(ops.values())} nodes; MatMul {ops['MatMul']}, fused/quantized {quantized or 'none'}, DequantizeLinear {ops['DequantizeLinear']}, QuantizeLinear {ops['QuantizeLinear']}, DynamicQuantizeLinear {ops['DynamicQuantizeLinear']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
