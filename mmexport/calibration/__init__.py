"""Calibration data, fp16 conversion and int8 QDQ quantization of exported artifacts."""

from .variants import VariantResult, quantize

__all__ = ["VariantResult", "quantize"]
