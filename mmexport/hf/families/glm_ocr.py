"""GLM-OCR: GLM-4V's tower without its position table and post-convolution norm,
with q/k norms in attention (transformers' own attention modules run them), then the same
post-norm, 2x2 convolution downsample and merger. GLM-5 Next: the same tower with clamped SwiGLU
MLPs in its blocks and merger (transformers' own modules, called as they are)."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(("glm_ocr", "glm5_next"), QwenStyle(downsample=True, frames_as_images=True))
