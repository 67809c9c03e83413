"""Qwen3-Omni-MoE's thinker: Qwen3-VL's tower (learned position table, rotary, the deepstack
mergers in `merger_list`). The audio encoder beside it is not part of the image side."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("qwen3_omni_moe_thinker",), QwenStyle(taps="bilinear", deepstack=True))
