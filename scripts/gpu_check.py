"""One short check on a GPU machine with TensorRT or TensorRT-RTX installed: build engines for
`mlp` (llava-1.5-7b) and `qformer` (blip2-opt-2.7b) at fp16, run them through the runner,
compare with the fp32 PyTorch module (`mmexport check`), and time them against PyTorch on CUDA.

    python scripts/gpu_check.py            # then: python -m pytest -m gpu
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch

import mmexport
from mmexport import engines
from mmexport.record import read
from mmexport.subjects.connector import from_record

RELEASE = {"mlp": "llava-1.5-7b", "qformer": "blip2-opt-2.7b"}


def timed(fn, iters: int = 50) -> float:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    print(torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
    for name, preset in RELEASE.items():
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = mmexport.export(name, preset, output=Path(tmp) / f"{name}.onnx").path
            fp16 = mmexport.quantize(fp32, "fp16").path
            built = mmexport.build_engine(fp16)
            _, report = mmexport.check(built.path)
            info = built.record.engine
            print(f"{name}: engine {info.flavor} {info.engine_bytes / 1e6:.1f} MB, parity passed={report.passed}, worst cosine {report.worst_cosine:.6f}")
            runner = engines.load(built.path)
            ref = from_record(fp32, read(fp32))
            connector, config, module = ref.connector, ref.config, ref.module
            inputs = connector.dummy_inputs(config, {a: s for a, s in connector.example_sizes(config).items()} | {"batch": 1})
            cuda_inputs = {k: v.cuda() for k, v in inputs.items()}
            module16 = module.half().cuda()
            with torch.inference_mode():
                torch_ms = timed(lambda: module16(*(v.half() for v in cuda_inputs.values())))  # noqa: B023 (called here)
            trt_ms = timed(lambda: runner(**cuda_inputs))  # noqa: B023 (called here)
            print(f"{name}: torch fp16 CUDA {torch_ms:.3f} ms, engine fp16 {trt_ms:.3f} ms (batch 1)")


if __name__ == "__main__":
    main()
