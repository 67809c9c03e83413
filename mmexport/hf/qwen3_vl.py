"""Qwen3-VL (and its MoE variant, same vision side): a learned position table resampled to each
grid (bilinear taps derived beside the graph), rotary, and the deepstack features of early blocks."""

from .family import Family
from .images import Patches
from .native import qwen_tower


def _outputs(hf) -> tuple[str, ...]:
    return ("image_embeds", *(f"deepstack_{i}" for i in range(len(hf.vision_config.deepstack_visual_indexes))))


FAMILY = Family(
    ("qwen3_vl", "qwen3_vl_moe"), images=Patches(taps="bilinear"), parts=("visual",), connector="merger", vision=qwen_tower, pooled="split", outputs=_outputs
)
