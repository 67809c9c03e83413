"""Qwen2.5-VL: Qwen2-VL's tower with window attention outside fullatt_block_indexes; the windows
are gathered in the processor's order (transformers permutes the patches and back)."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("qwen2_5_vl",), QwenStyle(windows=True))
