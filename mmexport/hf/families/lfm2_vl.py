"""LFM2-VL: a SigLIP2 NaFlex tower over tiles padded to a common patch count (positions resized
to each tile inside the tower), then a pixel unshuffle (factor x factor patches per token) and an
MLP projector."""

from ..family import Family
from ..layouts import NaFlex
from ..native import naflex_side

FAMILY = Family(
    ("lfm2_vl",),
    images=NaFlex(),
    parts=("vision_tower", "multi_modal_projector"),
    connector=None,
    vision=naflex_side,
    pooled="split",
    settings=("downsample_factor",),
    notes=("the projector unshuffles each tile's patches by its spatial shape: it is exported with the vision side (--vision-tower)",),
)
