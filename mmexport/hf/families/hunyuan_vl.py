"""HunYuan-VL: a SigLIP-style ViT (no rotary) over NaViT-packed patches in raster order, a learned
position table resampled bilinearly to each grid, attention within each image; then its merger:
RMSNorm, a 2x2 strided convolution, GELU, a 1x1 convolution, a learned newline after each row,
a Linear into the LLM's width, learned begin and end tokens around each image, RMSNorm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..attention import within_groups
from ..family import Family
from ..layouts import MAX_VIDEO_FRAMES, MAX_VIDEO_PATCHES, VIDEO_FRAMES, VIDEO_NAMES, PackedPatches, Sample, _pixels, typical_sizes
from ..model import module_path


@dataclass(frozen=True)
class LinedPatches(PackedPatches):
    """pixel_values [patches, C*P*P] in raster order and image_grid_thw (HunYuan-VL: images only;
    `video`: HY-V4-VL's pixel_values_videos and video_grid_thw, each frame merged alone).
    `wrap`: begin and end tokens around each image; `size_offset`: the position table's scale."""

    kind: ClassVar[str] = "newlines"
    wrap: bool = True
    size_offset: float = 0.0

    @property
    def derives(self) -> str:
        wrapped = ", begin/end tokens" if self.wrap else ""
        return f"per-frame attention groups, bilinear position-table taps, 2x2 merge neighbourhoods, row newlines{wrapped}"

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        taps = {"side": vision.max_image_size // vision.patch_size, "mode": vision.interpolate_mode, "align_corners": False}
        params = {"merge": vision.spatial_merge_size, "patch": vision.patch_size, "channels": vision.num_channels, "wrap": self.wrap}
        params["taps"] = taps | ({"size_offset": self.size_offset} if self.size_offset else {})
        return params | ({"names": dict(VIDEO_NAMES), "frames": True, "max_patches": MAX_VIDEO_PATCHES, "max_images": MAX_VIDEO_FRAMES} if self.video else {})

    def _shape(self, hf: Any, patches: int) -> tuple[int, ...]:
        params = self.params(hf)
        return (patches, params["channels"] * params["patch"] ** 2)

    def _items(self, hf: Any, grids: list[tuple[int, int, int]], seed: int) -> Sample:
        grid = torch.tensor(grids)
        return dict(zip(self.names, (_pixels(self._shape(hf, int(grid.prod(1).sum())), seed), grid)))

    def samples(self, hf: Any) -> list[Sample]:
        m = self.params(hf)["merge"]
        frames = ((2,), (1, 3), (2, 1, 2)) if self.video else ((1,), (1, 1), (1, 1, 1))
        cases = ([(4, 6)], [(2, 2), (5, 3)], [(3, 7), (2, 4), (1, 1)])  # in merged tokens
        return [self._items(hf, [(t, h * m, w * m) for t, (h, w) in zip(f, shapes)], 30 + i) for i, (f, shapes) in enumerate(zip(frames, cases))]

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        params = self.params(hf)
        unit, m, t = params["patch"] * params["merge"], params["merge"], VIDEO_FRAMES if self.video else 1
        return self._items(hf, [(t, h // unit * m, w // unit * m) for h, w in typical_sizes(images, seed)], 1000 + seed)


class LinedSide(nn.Module):
    """transformers' own patch embedding and blocks (attending within each frame, fed the derived
    groups); the position table resampled by the derived taps; the merger's strided convolution as
    a Linear over the gathered 2x2 neighbourhoods, and its newline (and HunYuan-VL's MLP, begin
    and end tokens and final norm) placed by derived indices instead of a per-image reshape."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.tower = model.get_submodule(module_path(model, "vision_tower"))

    def forward(self, pixel_values, frame_index, frame_valid, frame_inverse, pos_index, pos_weight, merge_index, line_index, wrap_index=None):
        tower, embed = self.tower, self.tower.embeddings
        x = embed.patch_embedding(pixel_values.reshape(-1, tower.config.num_channels, embed.patch_size, embed.patch_size)).flatten(1)
        table = embed.position_embedding.weight[1:]  # row 0: a class slot the patches never read
        x = x + (table[pos_index] * pos_weight[:, :, None].to(table.dtype)).sum(1).to(x.dtype)
        x = x[None]
        with within_groups(tower.config):
            for layer in tower.layers:
                x = layer(
                    x,
                    cu_seqlens=torch.zeros(2, dtype=torch.int32),
                    max_seqlen=1,
                    attention_mask=None,
                    mmexport_groups=(frame_index, frame_valid, frame_inverse),
                )
        return self._merge(x[0], merge_index, line_index, wrap_index)

    def _merge(self, x, merge_index, line_index, wrap_index):
        merger = self.tower.patch_merger
        conv = merger.proj_conv.weight  # [out, D, 2, 2]: the kernel's (row, column) offsets are the gather's order
        x = F.linear(merger.before_rms(x)[merge_index].flatten(1), conv.permute(0, 2, 3, 1).flatten(1), merger.proj_conv.bias)
        x = F.linear(merger.proj_act(x), merger.proj_out.weight[:, :, 0, 0], merger.proj_out.bias)
        x = torch.cat([x, merger.image_newline[None].to(x.dtype)])[line_index]
        if wrap_index is None:  # HY-V4-VL: the newline is in the LLM's width already
            return x
        x = merger.mlp(x)
        x = torch.cat([x, merger.image_begin[None].to(x.dtype), merger.image_end[None].to(x.dtype)])[wrap_index]
        return merger.after_rms(x)


def lined_side(model: nn.Module) -> nn.Module:
    return LinedSide(model).eval()


FAMILY = Family(
    ("hunyuan_vl",),
    images=LinedPatches(),
    parts=("vision_tower",),
    connector=None,
    vision=lined_side,
    pooled="split",
    notes=("the merger reshapes each image by its grid and adds newline, begin and end tokens: it is exported with the vision side (--vision-tower)",),
)
