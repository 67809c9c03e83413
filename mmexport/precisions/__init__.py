"""The precision registry: one module per precision, one line each here."""

from __future__ import annotations

from ..registry import Registry
from .base import TARGETS, Made, Precision, QuantizeOptions, VariantJob

# name -> module in this package that defines PRECISION
REGISTRY: Registry[Precision] = Registry("precision", __name__, "PRECISION", {"fp16": "fp16", "int8": "int8", "fp8": "fp8"})
names, get = REGISTRY.names, REGISTRY.get

__all__ = ["TARGETS", "Made", "Precision", "QuantizeOptions", "VariantJob", "get", "names"]
