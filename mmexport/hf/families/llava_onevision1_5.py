"""LLaVA-OneVision-1.5: a Qwen2-VL-style tower (2D rotary, per-frame attention, a 2x2 merger)
with a Conv2d patch embedding (one frame per patch), a learned class token per frame and a
LayerNorm before the blocks; videos run the same tower, frame by frame."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("llava_onevision1_5",), QwenStyle(class_token=True))
