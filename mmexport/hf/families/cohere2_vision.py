"""Command A Vision (cohere2_vision): SigLIP, pixel shuffle, Linear-SwiGLU-Linear; one row per tile."""

from ..family import Family
from ..layouts import Pixels

FAMILY = Family(("cohere2_vision",), images=Pixels(axis="tiles"), settings=("downsample_factor",))
