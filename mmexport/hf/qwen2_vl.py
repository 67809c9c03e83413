"""Qwen2-VL: native resolution; rotary positions and per-image attention derived from image_grid_thw."""

from .family import Family
from .images import Patches
from .native import qwen_tower

FAMILY = Family(("qwen2_vl",), images=Patches(), parts=("visual",), connector="merger", vision=qwen_tower, pooled="split")
