"""Mistral 3 (Pixtral tower): each image at its own size in a padded batch; its patches, 2D rotary
positions, per-image attention and 2x2 patch merge derived from image_sizes. Mistral Large 4 keeps this vision side."""

from ..family import Family
from ..layouts import Sized
from ..native import PixtralStyle

FAMILY = Family(
    ("mistral3", "mistral_large4"),
    images=Sized(),
    connector=None,
    vision=PixtralStyle(),
    pooled="split",
    settings=("spatial_merge_size", "vision_feature_layer"),
)
