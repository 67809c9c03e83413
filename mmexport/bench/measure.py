"""Timing and memory primitives for `mmexport bench`: interleaved rounds, robust statistics."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


def resident_mb() -> float:
    """This process's resident memory now (Linux /proc; elsewhere the peak, which only grows)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if platform.system() == "Darwin" else 1)


def gpu_used_mb() -> float:
    """Device memory in use on the current GPU, whoever allocated it (TensorRT does not use torch's allocator)."""
    import torch

    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


@dataclass
class Timing:
    times_ms: list[float]

    @property
    def median_ms(self) -> float:
        return float(np.median(self.times_ms))

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.times_ms, 90))


SETTLE_BELOW_MS = 100.0  # a call this short can be skewed by the threads the previous backend left spinning


def interleaved(calls: dict[str, Callable[[], Any]], warmup: int, iters: int) -> dict[str, Timing]:
    """Time each call `iters` times in rounds, rotating the order each round so no backend
    always follows the same one. Before each timed call of a short backend one untimed call lets
    the thread pools that the previous backend left spinning (OpenMP, ONNX Runtime) settle."""
    settle: dict[str, bool] = {}
    for name, call in calls.items():
        for _ in range(warmup):
            call()
        start = time.perf_counter()
        call()
        settle[name] = (time.perf_counter() - start) * 1000 < SETTLE_BELOW_MS
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(iters):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            if settle[name]:
                calls[name]()
            start = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: Timing(t) for name, t in times.items()}


# The int8 matrix instructions ONNX Runtime's MLAS picks from, best first (cpuinfo flag names):
# an int8 variant's speed depends on which one the CPU has more than on its model name.
INT8_INSTRUCTIONS = (("amx_int8", "AMX"), ("avx512_vnni", "AVX512-VNNI"), ("avx_vnni", "AVX-VNNI"), ("avx2", "AVX2, no VNNI"))


def _cpuinfo(key: str) -> str | None:
    """The first value of `key` in /proc/cpuinfo, or None where there is none (not Linux)."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.split(":", 1)[0].strip() == key)
    except (OSError, StopIteration):
        return None


def int8_instructions(flags: str | None) -> str | None:
    """The best int8 matrix instruction set among the CPU's flags, named as Intel/AMD name it."""
    have = set((flags or "").split())
    return next((name for flag, name in INT8_INSTRUCTIONS if flag in have), None)


def machine(threads: int) -> dict[str, Any]:
    """What the figures depend on."""
    import onnxruntime
    import torch

    cpu = _cpuinfo("model name") or platform.processor() or platform.machine()
    record = {
        "cpu": cpu,
        "int8_instructions": int8_instructions(_cpuinfo("flags")),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1) if hasattr(os, "sysconf") else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    return record
