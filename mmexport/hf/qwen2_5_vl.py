"""Qwen2.5-VL: Qwen2-VL's tower with window attention outside fullatt_block_indexes; the windows
are gathered in the processor's order (transformers permutes the patches and back)."""

from .family import Family
from .images import Patches
from .native import qwen_tower

FAMILY = Family(("qwen2_5_vl",), images=Patches(window=True), parts=("visual",), connector="merger", vision=qwen_tower, pooled="split")
