"""Gemma 4 Unified: no vision tower. Each 48-pixel patch (3 x 3 of 16-pixel patches, merged by the
processor) is a soft token: LayerNorm, Dense, LayerNorm, a two-axis position table, LayerNorm,
then the multimodal embedder. The processor pads each image's patches to the batch's count as
Gemma 4's does; the image rows are gathered by an index derived beside the graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..family import Family
from ..model import module_path
from .gemma4 import PositionedPatches


@dataclass(frozen=True)
class MergedPatches(PositionedPatches):
    """Gemma 4's layout with the processor's merged patches: one position per soft token."""

    max_patches: int = 1120  # the largest soft-token budget the processor takes
    derives: ClassVar[str | None] = "which rows of the padded batch are the images' patches"
    kind: ClassVar[str] = "kept"

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        side = vision.patch_size * vision.pooling_kernel_size
        params = {"kernel": 1, "patch_dim": 3 * side**2, "patch_size": side, "max_patches": self.max_patches, "max_position": vision.mm_posemb_size}
        return params | ({"names": self.called, "max_images": self.max_frames, "opt_patches": 70} if self.video else {"opt_patches": 280})


class KeptSide(nn.Module):
    """transformers' own embedder over every row (padding too, as transformers runs it), then the
    derived image rows gathered in order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.embedder = model.get_submodule(module_path(model, "embed_vision"))

    def forward(self, pixel_values: torch.Tensor, image_position_ids: torch.Tensor, keep_index: torch.Tensor) -> torch.Tensor:
        states = self.embedder(pixel_values, image_position_ids).pooler_output
        return states.reshape(-1, states.shape[-1])[keep_index]


def kept_side(model: nn.Module) -> nn.Module:
    return KeptSide(model).eval()


FAMILY = Family(
    ("gemma4_unified",),
    images=MergedPatches(),
    video=MergedPatches(video=True),  # get_video_features: the same embedder on every frame, split per clip
    parts=("embed_vision",),
    connector=None,
    vision=kept_side,
    pooled="split",
    notes=("encoder-free: the exported vision side is the patch embedder and the multimodal embedder",),
)
