"""ERNIE-4.5-VL: Qwen2-VL's tower (a Linear patch embedding, 2D rotary, attention per frame) with a
final LayerNorm instead of a merger, then its resampler: each 2x2 block's patches side by side
and an MLP, frames (0, 1), (2, 3), ... of a clip side by side (an image with itself) and an MLP,
a projection into the LLM's width and an RMSNorm."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("ernie4_5_vl_moe",), QwenStyle(tower="vision_tower", resampler="resampler_model"), connector=None)
