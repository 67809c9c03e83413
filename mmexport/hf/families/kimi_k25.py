"""Kimi-K2.5 (MoonViT): patches of every image packed in raster order, a learned 64x64 position
table resampled bicubically to each grid, 2D rotary, attention within each image, then a 2x2
merge into its projector (LayerNorm, Linear, GELU, Linear). Video: the same tower on its video
processor's chunks of up to four frames, each chunk attending as one group with a per-frame
sinusoid added and its 2x2 neighbourhoods averaged over its frames."""

from ..family import Family
from ..layouts import MoonViTPatches
from ..native import moonvit_side

FAMILY = Family(
    ("kimi_k25",),
    images=MoonViTPatches(),
    video=MoonViTPatches(video=True),
    parts=("vision_tower", "mm_projector"),
    connector=None,
    vision=moonvit_side,
    pooled="split",
    notes=("the projector merges each image's 2x2 neighbourhoods by its grid: it is exported with the vision side (--vision-tower)",),
)
