"""Kimi-K2.5 (MoonViT): patches of every image packed in raster order, a learned 64x64 position
table resampled bicubically to each grid, 2D rotary, attention within each image, then a 2x2
merge into its projector (LayerNorm, Linear, GELU, Linear). Its video path pools frames and is
not declared."""

from ..family import Family
from ..layouts import MoonViTPatches
from ..native import moonvit_side

FAMILY = Family(
    ("kimi_k25",),
    images=MoonViTPatches(),
    parts=("vision_tower", "mm_projector"),
    connector=None,
    vision=moonvit_side,
    pooled="split",
    notes=("the projector merges each image's 2x2 neighbourhoods by its grid: it is exported with the vision side (--vision-tower)",),
)
