"""SmolVLM: Idefics3's vision side; an all-padding batch keeps its first crop."""

from ..family import Family
from ..layers import real_crops
from ..layouts import Crops

FAMILY = Family(
    ("smolvlm",),
    images=Crops(keep_one=True),
    parts=("vision_model", "connector"),
    connector=("connector",),
    vision=real_crops,
    pooled="split",
    settings=("scale_factor",),
)
