"""What a precision plug-in is, and what it is handed: the fp32 graph, calibration samples
split three ways, and the gate. The gate-and-install step around it is variants.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import onnx

from ..parity import ParityReport
from ..parity.runners import Feeds
from ..specs import Tolerance

TARGETS = ("tensorrt", "cpu")
# What surrounds the quantized layers, per target: TensorRT wants fp16 around int8/fp8 layers;
# ONNX Runtime's CPU provider has few fp16 kernels, and casts there cost more than int8 saves.
TARGET_HIGH_PRECISION = {"tensorrt": "fp16", "cpu": "fp32"}


@dataclass
class QuantizeOptions:
    calib: str | None = None
    method: str | None = None  # range method; None: the plug-in's search chooses
    percentile: float = 99.99
    samples: int = 64
    smooth: float | None = None  # SmoothQuant alpha; None: searched; 0: off
    io: str = "fp32"
    high_precision: str | None = None  # None: what the target wants
    target: str = "tensorrt"


@dataclass
class VariantJob:
    """Everything a plug-in needs. `score` runs on search samples (held apart from both the
    ranges and the gate), so choosing between candidates never looks at the gate's samples."""

    load_source: Callable[[], onnx.ModelProto]  # a fresh fp32 copy (opset >= 19, nodes named), read from disk
    options: QuantizeOptions
    tolerance: Tolerance
    fit: list[Feeds]  # samples that set ranges and smoothing scales
    score: Callable[[onnx.ModelProto], ParityReport]  # on the search samples
    gate: Callable[[onnx.ModelProto], ParityReport]  # on the held-out samples: the verdict
    step: Callable[[str], None] = lambda message: None
    probe: list[Feeds] = field(default_factory=list)  # graph feeds where activations are measured: the fit samples, else the gate's inputs
    rank: Callable[[onnx.ModelProto], ParityReport] | None = None  # a cheaper score (fewer search samples) to order layers by; None: score

    @property
    def high_precision(self) -> str:
        return self.options.high_precision or TARGET_HIGH_PRECISION[self.options.target]


@dataclass
class Made:
    model: onnx.ModelProto
    report: ParityReport  # the gate's
    details: dict[str, Any] = field(default_factory=dict)  # what was chosen and why, for the record
    refusal: str | None = None  # when it failed: the cause, in one line


@dataclass(frozen=True)
class Precision:
    name: str
    summary: str
    needs_calibration: bool
    tolerance: Callable[[Any], Tolerance]  # subject (its `attention`) -> its gate
    make: Callable[[VariantJob], Made]
    quantized: bool = False  # Q/DQ layers inside higher-precision surroundings chosen by --target
    min_arch: int | None = None  # lowest GPU compute capability that runs it (fp8: 89, Ada)
    cpu_speed: bool = True  # False: ONNX Runtime's CPU provider emulates it (its accuracy is real there, its speed is not)

    @property
    def bench_target(self) -> str:
        """The --target of the variant `bench` times in ONNX Runtime on a CPU: a quantized one
        that runs there gets fp32 surroundings (casts to fp16 cost more than int8 saves)."""
        return "cpu" if self.quantized and self.cpu_speed else "tensorrt"
