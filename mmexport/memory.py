"""Give freed memory back to the operating system between large steps (a candidate graph of a
vision tower is ~1 GB; glibc keeps freed blocks otherwise, and peak memory adds up)."""

from __future__ import annotations

import ctypes
import gc


def release(cuda: bool = False) -> None:
    gc.collect()
    if cuda:
        import torch

        torch.cuda.empty_cache()  # cached blocks would hide the next allocations
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
