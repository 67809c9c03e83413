"""Qwen3-VL (and its MoE variant, same vision side): a learned position table resampled to each
grid (bilinear taps derived beside the graph), rotary, and the deepstack features of early blocks."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("qwen3_vl", "qwen3_vl_moe"), QwenStyle(taps="bilinear", deepstack=True))
