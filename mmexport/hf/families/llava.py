"""LLaVA-1.5 (one vision_feature_layer or a list): CLIP's hidden states, CLS dropped by the
'default' strategy, multi_modal_projector (Linear, GELU, Linear)."""

from ..family import Family
from ..layers import feature_layers

FAMILY = Family(
    ("llava",),
    vision=feature_layers,
    pooled="stack",
    settings=("vision_feature_layer", "vision_feature_select_strategy", "projector_hidden_act"),
)
