"""Qwen3-VL (and its MoE variant, same vision side): a learned position table resampled to each
grid (bilinear taps derived beside the graph), rotary, and the deepstack features of early blocks.
Cosmos 3 Omni and Cohere Compass keep this vision side as it is (their modular files)."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("qwen3_vl", "qwen3_vl_moe", "cosmos3_omni", "cohere_compass"), QwenStyle(taps="bilinear", deepstack=True), video_timestamps=True)
