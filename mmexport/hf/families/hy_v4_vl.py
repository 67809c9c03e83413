"""HY-V4-VL: HunYuan-VL's tower (hunyuan_vl.py) with a shifted position-table scale, a merger that
projects straight into the LLM's width (no MLP, no begin/end tokens, no final norm) with a newline
per row, and videos: each frame of a clip merged on its own."""

from ..family import Family
from .hunyuan_vl import LinedPatches, lined_side

FAMILY = Family(
    ("hy_v4_vl",),
    images=LinedPatches(wrap=False, size_offset=0.1),
    video=LinedPatches(wrap=False, size_offset=0.1, video=True),  # get_video_features: the image path on each frame
    parts=("vision_tower",),
    connector=None,
    vision=lined_side,
    pooled="split",
    notes=("the merger convolves each frame by its grid and adds a newline per row: it is exported with the vision side (--vision-tower)",),
)
