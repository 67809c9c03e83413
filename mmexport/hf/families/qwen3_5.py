"""Qwen3.5 (and its MoE variant, and Qwen4-exp built on it): Qwen3-VL's tower with the deepstack
mergers removed (modular_qwen3_5.py): a learned position table resampled bilinearly to each grid,
2D rotary, per-image attention, a 2x2 merger."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("qwen3_5", "qwen3_5_moe", "qwen4_exp"), QwenStyle(taps="bilinear"))
