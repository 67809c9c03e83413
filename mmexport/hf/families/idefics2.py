"""Idefics2: SigLIP over the real crops with a patch mask (whole patches), then the connector
(SwiGLU projection and a perceiver resampler over the kept patches)."""

from ..family import Family
from ..layers import real_crops_resampled
from ..layouts import Crops

FAMILY = Family(
    ("idefics2",), images=Crops(partial=True), parts=("vision_model", "connector"), connector=("connector",), vision=real_crops_resampled, pooled="split"
)
