"""Aya Vision: SigLIP, pixel shuffle, LayerNorm, Linear-SwiGLU-Linear; one row per tile."""

from ..family import Family
from ..layouts import Pixels

FAMILY = Family(("aya_vision",), images=Pixels(axis="tiles"), settings=("downsample_factor", "vision_feature_layer"))
