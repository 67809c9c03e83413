"""`mmexport check MODEL.engine`: the engine against the fp32 PyTorch reference, on a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..connectors import Tolerance
from ..exporter.parity import ParityReport, ParityRow, compare
from ..exporter.pipeline import reference_module
from .runner import EngineRunner, read_sidecar

# fp32 engines may run matmuls in TF32 on Ampere and newer: a looser gate than ONNX Runtime's.
ENGINE_FP32_TOLERANCE = Tolerance(max_rel=2e-3, min_cosine=0.9999)


def check_engine(engine: str | Path, weights: str | Path | None = None, tolerance: Tolerance | None = None) -> ParityReport:
    import torch

    engine = Path(engine)
    sidecar = read_sidecar(engine)
    connector, config, module = reference_module(engine, sidecar, weights)
    precision = sidecar["precision"]
    tolerance = tolerance or (ENGINE_FP32_TOLERANCE if precision == "fp32" else connector.tolerance_for(precision))
    runner = EngineRunner(engine)
    report = ParityReport(tolerance=tolerance, provider=f"{sidecar['flavor']} {sidecar['tensorrt_version']}")
    for i, sizes in enumerate(connector.parity_shapes(config)):
        inputs = connector.dummy_inputs(config, sizes, seed=1 + i)
        try:
            for name, tensor in inputs.items():
                runner.check_shape(name, tuple(tensor.shape))
        except Exception:
            continue  # outside the engine's profile: not this engine's job
        with torch.inference_mode():
            expected = module(*inputs.values())
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        actual = runner(**{k: v.cuda() for k, v in inputs.items()})
        for (name, got), ref in zip(actual.items(), expected):
            max_abs, max_rel, cos = compare(got.float().cpu().numpy().astype(np.float32), ref.float().numpy())
            report.rows.append(ParityRow(dict(sizes), name, max_abs, max_rel, cos, tolerance.passes(max_rel, cos)))
    return report
