"""VipLLaVA: CLIP hidden states of several layers, CLS dropped, concatenated, LayerNorm + MLP."""

from ..family import Family

FAMILY = Family(("vipllava",), settings=("vision_feature_layer", "projector_layernorm_eps"))
