"""GLM-4V: Qwen-style tower with a bicubically resampled position table (taps derived beside the
graph), a 2x2 convolution downsample and a SwiGLU merger."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("glm4v",), QwenStyle(taps="bicubic", table="embeddings.position_embedding", post_conv_norm=True, downsample=True))
