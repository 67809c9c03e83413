"""Cosmos3-Edge: a SigLIP2 encoder over Qwen-style packed patches (block-major, attention within
each frame), its learned square position table resized to each grid with antialiased bilinear
interpolation, a final LayerNorm, then Qwen3.5's merger over each 2x2 block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...derivations import REGISTRY as DERIVATIONS
from ...derivations import Derivation, Derived
from ...specs import Axis, TensorSpec
from ..attention import within_groups
from ..family import Family
from ..layouts import Patches
from ..model import module_path


@dataclass(frozen=True)
class ResampledPatches(Patches):
    """Qwen2-VL's packing; derived beside it, the position table's resize as per-item weights."""

    @property
    def derives(self) -> str:
        return f"per-{'frame' if self.video else 'image'} attention groups, antialiased position-table resize weights"

    def params(self, hf: Any) -> dict[str, Any]:
        return super().params(hf) | {"side": int(hf.vision_config.num_patches**0.5)}

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("resampled").inputs(self.params(hf))

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("resampled", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("resampled").axes(self.params(hf))["patches"]


class ResampledSide(nn.Module):
    """transformers' own patch embedding, encoder layers (attending within the derived frame
    groups), final LayerNorm and merger; the position table resized by the derived weights."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.visual = model.get_submodule(module_path(model, "visual"))
        self.projector = model.get_submodule(module_path(model, "projector"))

    def forward(self, pixel_values, frame_index, frame_valid, frame_inverse, row_weights, column_weights, position_cell):
        embeddings = self.visual.embeddings
        x = embeddings.patch_embedding(pixel_values.to(embeddings.patch_embedding.weight.dtype))
        side = row_weights.shape[-1]
        table = embeddings.position_embedding.weight.float().reshape(side, side, -1)  # [rows, columns, D]
        by_rows = torch.einsum("ihs,swd->ihwd", row_weights, table)
        grid = torch.einsum("iwt,ihtd->ihwd", column_weights, by_rows)
        x = x + grid.reshape(-1, grid.shape[-1])[position_cell].to(x.dtype)
        with within_groups(self.visual.config):
            for layer in self.visual.encoder.layers:
                x = layer(x, cu_seqlens=torch.zeros(2, dtype=torch.int32), max_seqlen=1, mmexport_groups=(frame_index, frame_valid, frame_inverse))
        return self.projector(self.visual.post_layernorm(x))


def resampled_side(model: nn.Module) -> nn.Module:
    return ResampledSide(model).eval()


FAMILY = Family(
    ("cosmos3_edge",),
    images=ResampledPatches(),
    video=ResampledPatches(video=True),  # get_video_features: the image path on the clip's frames
    parts=("visual", "projector"),
    connector=None,
    vision=resampled_side,
    pooled="split",
    notes=("the position table is resized to each grid: the vision side is exported whole (--vision-tower)",),
)
