"""Qwen2.5-Omni's thinker: Qwen2.5-VL's tower and merger (separate q/k/v projections, which its own
attention modules run). The audio encoder beside it is not part of the image side."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("qwen2_5_omni_thinker",), QwenStyle(windows=True))
