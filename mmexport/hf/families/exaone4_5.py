"""EXAONE 4.5: Qwen2.5-VL's tower (windows, full-attention blocks, merger) with grouped-query
attention (its own attention modules split the fused projection)."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("exaone4_5",), QwenStyle(windows=True))
