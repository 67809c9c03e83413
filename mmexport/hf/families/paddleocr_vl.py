"""PaddleOCR-VL: a SigLIP encoder over NaViT-packed patches of many images (a learned position table
resampled bilinearly to each grid, 2D rotary, attention within each image), then a projector that
concatenates 2x2 neighbourhoods (LayerNorm, Linear, GELU, Linear)."""

from ..family import Family
from ..layouts import PackedPatches
from ..native import navit_side

FAMILY = Family(
    ("paddleocr_vl",),
    images=PackedPatches(),
    parts=("visual", "projector"),
    connector=None,
    vision=navit_side,
    pooled="split",
    notes=("the projector merges each image's 2x2 neighbourhoods by its grid: it is exported with the vision side (--vision-tower)",),
)
