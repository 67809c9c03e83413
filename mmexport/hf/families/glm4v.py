"""GLM-4V: Qwen-style tower with a bicubically resampled position table (taps derived beside the
graph), a 2x2 convolution downsample and a SwiGLU merger. GLM-4.6V, GLM-4.5V (glm4v_moe) and
GLMGA keep this vision side (`Glm4vMoeVisionModel(Glm4vVisionModel): pass`)."""

from ..native import QwenStyle, qwen_family

FAMILY = qwen_family(
    ("glm4v", "glm46v", "glm4v_moe", "glmga"),
    QwenStyle(taps="bicubic", table="embeddings.position_embedding", post_conv_norm=True, downsample=True, frames_as_images=True),
)
