"""GLM-4V: Qwen-style tower with a bicubically resampled position table (taps derived beside the
graph), a 2x2 convolution downsample and a SwiGLU merger."""

from .family import Family
from .images import Patches
from .native import qwen_tower

FAMILY = Family(("glm4v",), images=Patches(taps="bicubic"), parts=("visual",), connector="merger", vision=qwen_tower, pooled="split")
