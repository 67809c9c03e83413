"""VideoLLaMA3: a SigLIP encoder (no position table: 2D rotary) over patches packed block-major by
each item's merge size, each frame attending alone, a final LayerNorm, then transformers' pixel
unshuffle (each m x m block averaged: bilinear halving at m = 2, nothing at m = 1) and an MLP
projector. Images and videos take the same path, videos at merge size 2."""

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
from ..layouts import MAX_VIDEO_FRAMES, MAX_VIDEO_PATCHES, VIDEO_FRAMES, Patches, Sample, _pixels, typical_sizes
from ..model import module_path

IMAGES = {"pixels": "pixel_values", "grid": "image_grid_thw", "merges": "image_merge_sizes"}
VIDEOS = {"pixels": "pixel_values_videos", "grid": "video_grid_thw", "merges": "video_merge_sizes"}


@dataclass(frozen=True)
class MergeSizedPatches(Patches):
    """pixel_values [patches, C*P*P] of every item, image_grid_thw [items, 3] and image_merge_sizes
    [items] (the processors' 1 for images, 2 for videos); videos under their video_* names."""

    @property
    def called(self) -> dict[str, str]:
        return VIDEOS if self.video else IMAGES

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.called.values())

    @property
    def derives(self) -> str:
        return "rotary positions, per-frame attention groups, the m x m blocks each token averages"

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        params = {"merge": 1, "patch_dim": vision.num_channels * vision.patch_size**2}
        return params | ({"names": dict(VIDEOS), "max_patches": MAX_VIDEO_PATCHES, "max_images": MAX_VIDEO_FRAMES} if self.video else {})

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("merge_sized").inputs(self.params(hf))

    def _items(self, hf: Any, grids: list[tuple[int, int, int]], merges: list[int], seed: int) -> Sample:
        grid = torch.tensor(grids)
        pixels = _pixels((int(grid.prod(1).sum()), self.params(hf)["patch_dim"]), seed)
        return dict(zip(self.names, (pixels, grid, torch.tensor(merges))))

    def samples(self, hf: Any) -> list[Sample]:
        cases = ([(4, 6)], [(2, 2), (5, 3)], [(3, 7), (2, 4), (1, 1)])  # in blocks of 2 x 2 patches
        frames = ((2,), (1, 3), (2, 1, 4)) if self.video else ((1,), (1, 1), (1, 1, 1))
        merges = ((2,), (2, 2), (2, 1, 2)) if self.video else ((1,), (1, 2), (1, 1, 2))  # a call may mix them
        return [
            self._items(hf, [(t, 2 * h, 2 * w) for t, (h, w) in zip(f, shapes)], list(m), 30 + i) for i, (f, shapes, m) in enumerate(zip(frames, cases, merges))
        ]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("merge_sized", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("merge_sized").axes(self.params(hf))["patches"]

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        """`images` images (or clips of VIDEO_FRAMES frames) of typical sizes, on the processors' 2-patch grid."""
        unit, t, m = 2 * hf.vision_config.patch_size, VIDEO_FRAMES if self.video else 1, 2 if self.video else 1
        return self._items(hf, [(t, h // unit * 2, w // unit * 2) for h, w in typical_sizes(images, seed)], [m] * images, 1000 + seed)


class MergeSizedSide(nn.Module):
    """transformers' own patch embedding, rotary and encoder layers over the packed patches (fed the
    derived positions; attending within each frame), its final LayerNorm, each token's m x m
    block averaged by the derived gather, and its projector."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.vision = model.get_submodule(module_path(model, "vision_model"))
        self.projector = model.get_submodule(module_path(model, "projector"))

    def forward(self, pixel_values, position_ids, frame_index, frame_valid, frame_inverse, merge_index):
        vision = self.vision
        x = vision.embeddings(pixel_values.to(vision.dtype))
        rotary = vision.rotary_pos_emb(x, position_ids)
        unused = torch.zeros(2, dtype=torch.int32)  # cu_seqlens: the groups replace it
        with within_groups(vision.config):
            x = vision.encoder(x, cu_seqlens=unused, max_seqlen=1, position_embeddings=rotary, mmexport_groups=(frame_index, frame_valid, frame_inverse))
        x = vision.post_layernorm(x.last_hidden_state)
        return self.projector(x[merge_index].mean(1))


def merge_sized_side(model: nn.Module) -> nn.Module:
    return MergeSizedSide(model).eval()


FAMILY = Family(
    ("video_llama_3",),
    images=MergeSizedPatches(),
    video=MergeSizedPatches(video=True),  # get_video_features is get_image_features on the clips' patches
    parts=("vision_model", "projector"),
    connector=None,
    vision=merge_sized_side,
    pooled="split",
    notes=("the pixel unshuffle averages each item's merge-size blocks: it is exported with the vision side (--vision-tower)",),
)
