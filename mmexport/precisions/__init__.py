"""The precision registry: one module per precision, one line each here."""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import TARGETS, Made, Precision, QuantizeOptions, VariantJob

# name -> module in this package that defines PRECISION
_MODULES = {
    "fp16": "fp16",
    "int8": "int8",
    "fp8": "fp8",
}


def names() -> list[str]:
    return list(_MODULES)


def get(name: str) -> Precision:
    if name not in _MODULES:
        raise UsageError(f"unknown precision '{name}'; choose one of: {', '.join(_MODULES)}")
    return importlib.import_module(f"{__name__}.{_MODULES[name]}").PRECISION


__all__ = ["TARGETS", "Made", "Precision", "QuantizeOptions", "VariantJob", "get", "names"]
