"""MiniMax-M3-VL: a CLIP-like tower over Qwen2.5-VL's packed patches (Conv3d embedding, 3D rotary
over frame, row and column, attention within each clip), then a projector that maps each patch and
merges each 2x2 block (four consecutive patches in the processor's order)."""

from ..family import Family
from ..layouts import Patches
from ..native import own_tower_side

_TOWER = dict(temporal_positions=True, clip_attention=True)

FAMILY = Family(
    ("minimax_m3_vl",),
    images=Patches(**_TOWER),
    video=Patches(video=True, **_TOWER),
    parts=("vision_tower", "multi_modal_projector"),
    connector=None,
    vision=own_tower_side,
    pooled="split",
    notes=("the projector merges 2x2 blocks by the processor's patch order: it is exported with the vision side (--vision-tower)",),
)
