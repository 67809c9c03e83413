"""LFM3-VL: Qwen3-VL's patch packing with its own tower: a Linear patch embedding and RMSNorm, then
layers that either attend within each frame (grouped-query heads, q/k norms, 2D rotary) or mix
each frame's grid with a gated depthwise convolution; then a projector over each 2x2 block
(LayerNorm per token, Linear, GELU, Linear)."""

from __future__ import annotations

import torch
from torch import nn

from ..attention import within_groups
from ..family import Family
from ..layouts import Patches
from ..model import module_path


class ConvAttentionSide(nn.Module):
    """transformers' own embedding, rotary and layers: attention layers within the derived frame
    groups; the convolution layers' depthwise Conv2d as a weighted sum over the derived taps
    (transformers reshapes each frame to its grid in Python); the projector as it is."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.tower = model.get_submodule(module_path(model, "vision_tower"))
        self.projector = model.get_submodule(module_path(model, "multi_modal_projector"))

    def forward(self, pixel_values, position_ids, frame_index, frame_valid, frame_inverse, conv_index):
        tower = self.tower
        x = tower.embedding_norm(tower.patch_embed(pixel_values))
        rotary = tower.rotary_pos_emb(x, position_ids)
        groups = (frame_index, frame_valid, frame_inverse)
        with within_groups(tower.config):
            for layer in tower.layers:
                if layer.is_attention_layer:
                    x = layer(x, position_embeddings=rotary, cu_seqlens=torch.zeros(2, dtype=torch.int32), max_seqlen=1, mmexport_groups=groups)
                else:
                    x = x + self._conv(layer.conv, layer.operator_norm(x), conv_index)
                    x = x + layer.feed_forward(layer.ffn_norm(x))
        return self.projector(x)

    @staticmethod
    def _conv(conv: nn.Module, x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        input_gate, output_gate, conv_input = conv.in_proj(x).chunk(3, dim=-1)
        gated = input_gate * conv_input
        padded = torch.cat([gated, gated.new_zeros(1, gated.shape[-1])])  # the row outside-frame taps read
        weight = conv.spatial_conv.weight.flatten(1).transpose(0, 1)  # [taps, channels], taps row-major
        mixed = (padded[taps] * weight[None]).sum(1)
        return conv.out_proj(output_gate * mixed)


def conv_attention_side(model: nn.Module) -> nn.Module:
    return ConvAttentionSide(model).eval()


FAMILY = Family(
    ("lfm3_vl",),
    images=Patches(conv=True),
    video=Patches(video=True, conv=True),  # get_video_features: the image path on the clip's frames
    parts=("vision_tower", "multi_modal_projector"),
    connector=None,
    vision=conv_attention_side,
    pooled="split",
    notes=("the convolution layers read each frame's grid: the vision side is exported whole (--vision-tower)",),
)
