"""Idefics3: SigLIP over the real crops (all-zero padding crops dropped), pixel shuffle, Linear."""

from ..family import Family
from ..layers import real_crops
from ..layouts import Crops

FAMILY = Family(
    ("idefics3",), images=Crops(), parts=("vision_model", "connector"), connector=("connector",), vision=real_crops, pooled="split", settings=("scale_factor",)
)
