"""InternVL (transformers' -hf releases): InternViT's hidden state at vision_feature_layer, CLS
dropped, pixel shuffle, multi_modal_projector (LayerNorm, Linear, GELU, Linear)."""

from ..family import Family
from ..layouts import Pixels

FAMILY = Family(("internvl",), images=Pixels(axis="tiles"), settings=("downsample_ratio", "vision_feature_layer"))
