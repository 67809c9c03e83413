"""Qwen2-VL: native resolution; rotary positions and per-image attention derived from image_grid_thw."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("qwen2_vl",), QwenStyle())
