"""Which TensorRT is installed and usable: full TensorRT (`tensorrt`, builds on a GPU) or
TensorRT-RTX (`tensorrt_rtx`, builds ahead of time without a GPU). Same Python API for what we use."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from ..errors import UsageError

MODULES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}
EXTRAS = {"tensorrt": "pip install 'mmexport[tensorrt]' (needs NVIDIA's package index and a GPU)", "tensorrt-rtx": "pip install 'mmexport[tensorrt-rtx]'"}
# TensorRT-RTX targets (no SM90). Turing (SM75) has no fp32 GEMM in TensorRT-RTX, so it is opt-in.
RTX_DEFAULT_ARCHS = ("sm80", "sm86", "sm89", "sm120")


@dataclass(frozen=True)
class Flavor:
    name: str
    trt: ModuleType

    @property
    def version(self) -> str:
        return self.trt.__version__


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(MODULES[name])
    except ImportError:
        return None


def gpu_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def resolve(name: str = "auto") -> Flavor:
    """`auto`: TensorRT where a GPU can build with it, else TensorRT-RTX (no GPU needed)."""
    if name not in ("auto", *MODULES):
        raise UsageError(f"unknown flavor '{name}'; choose auto, tensorrt or tensorrt-rtx")
    if name != "auto":
        module = _import(name)
        if module is None:
            raise UsageError(f"{name} is not installed: {EXTRAS[name]}")
        if name == "tensorrt" and not gpu_available():
            raise UsageError("TensorRT builds need a GPU and none is visible; use --flavor tensorrt-rtx to build ahead of time")
        return Flavor(name, module)
    for candidate in ("tensorrt", "tensorrt-rtx") if gpu_available() else ("tensorrt-rtx",):
        module = _import(candidate)
        if module is not None:
            return Flavor(candidate, module)
    raise UsageError(f"no TensorRT is installed: {EXTRAS['tensorrt-rtx']} (builds without a GPU) or {EXTRAS['tensorrt']}")
