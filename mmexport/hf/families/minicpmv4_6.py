"""MiniCPM-V 4.6 (4.7, and MiniCPM-o OCR): a SigLIP encoder over the slices of each image, packed
side by side in one strip (a learned position table read at each slice's nearest rows, attention
within each slice); in 16x mode, after layer `insert_layer_id`, a merger that attends within 2x2
windows and folds each into one token; a final LayerNorm; then an MLP over each slice's 2x2
neighbourhoods. 4x mode (OCR) skips the window merger. Video: its video processor packs every
frame's slices into the same strip, and get_video_features is the image path on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...derivations import REGISTRY as DERIVATIONS
from ...derivations import Derivation, Derived, Feeds
from ...errors import UsageError
from ...specs import Axis, TensorSpec
from ..attention import within_groups
from ..family import Family
from ..layouts import MAX_VIDEO_FRAMES, MAX_VIDEO_PATCHES, VIDEO_FRAMES, Sample, _by_tokens, _pixels, typical_sizes
from ..model import module_path

VIDEO_NAMES = {"pixels": "pixel_values_videos", "sizes": "target_sizes_videos"}


@dataclass(frozen=True)
class Strip:
    """pixel_values [1, C, P, patches * P] (every slice's patches side by side, row-major each) and
    target_sizes [slices, 2] (rows, columns of patches), int32 as the processor returns them.
    `video`: its video processor's pixel_values_videos and target_sizes_videos, the same strip of
    every frame's slices (get_video_features is get_image_features on them)."""

    video: bool = False
    derives: ClassVar[str | None] = "nearest position-table rows, per-slice attention groups, 2x2 windows and neighbourhoods"

    @property
    def names(self) -> tuple[str, ...]:
        called = VIDEO_NAMES if self.video else {"pixels": "pixel_values", "sizes": "target_sizes"}
        return (called["pixels"], called["sizes"])

    def params(self, hf: Any) -> dict[str, Any]:
        vision, window_merge = hf.vision_config, hf.downsample_mode != "4x"
        side = vision.image_size // vision.patch_size
        params = {"patch": vision.patch_size, "channels": vision.num_channels, "side": side, "window_merge": window_merge, "unit": 16 if window_merge else 4}
        return params | ({"names": dict(VIDEO_NAMES), "max_patches": MAX_VIDEO_PATCHES, "max_slices": MAX_VIDEO_FRAMES} if self.video else {})

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("strips").inputs(self.params(hf))

    def _slices(self, hf: Any, sizes: list[tuple[int, int]], seed: int) -> Sample:
        patch = self.params(hf)["patch"]
        strip = _pixels((1, hf.vision_config.num_channels, patch, sum(h * w for h, w in sizes) * patch), seed)
        return dict(zip(self.names, (strip, torch.tensor(sizes, dtype=torch.int32))))

    def samples(self, hf: Any) -> list[Sample]:
        k = int(np.sqrt(self.params(hf)["unit"]))
        cases = ([(2, 3)], [(1, 1), (3, 2)], [(3, 1), (1, 2), (2, 2)])  # in blocks of k x k patches
        return [self._slices(hf, [(r * k, c * k) for r, c in shapes], 50 + i) for i, shapes in enumerate(cases)]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("strips", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("strips").axes(self.params(hf))["patches"]

    def collate(self, items: list[Feeds]) -> Feeds:
        pixels, sizes = self.names
        return {pixels: np.concatenate([i[pixels] for i in items], -1), sizes: np.concatenate([i[sizes] for i in items])}

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        unit = self.params(hf)["patch"] * int(np.sqrt(self.params(hf)["unit"]))
        k = unit // self.params(hf)["patch"]
        frames = VIDEO_FRAMES if self.video else 1  # a clip: each of its frames one slice of its size
        return self._slices(hf, [(h // unit * k, w // unit * k) for h, w in typical_sizes(images, seed) for _ in range(frames)], 1000 + seed)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        p, sizes = self.params(hf)["patch"], np.asarray(feeds[self.names[1]])
        return f"{len(sizes)} slice(s) {', '.join(f'{h * p}x{w * p}' for h, w in sizes.tolist())} ({int(sizes.prod(1).sum())} patches)"


class StripTower(nn.Module):
    """transformers' own patch embedding, position table, encoder layers (attending within each
    slice, fed the derived groups), final LayerNorm and merger MLP over the gathered 2x2
    neighbourhoods; the two modes' forwards below."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.tower = model.get_submodule(module_path(model, "vision_tower"))
        self.merger = model.get_submodule(module_path(model, "merger"))
        if self.merger.merger_times != 1:
            raise UsageError(f"merger_times {self.merger.merger_times}: mmexport reads MiniCPM-V's merger with one round (the releases' setting)")

    def _embed(self, pixel_values: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        embeddings = self.tower.embeddings
        x = embeddings.patch_embedding(pixel_values.to(self.tower.dtype)).flatten(2).transpose(1, 2)
        return x + embeddings.position_embedding(position_ids)[None]

    def _layers(self, x: torch.Tensor, groups: tuple, which: range) -> torch.Tensor:
        with within_groups(self.tower.config):
            for i in which:
                x = self.tower.encoder.layers[i](x, attention_mask=None, cu_seqlens=torch.zeros(2, dtype=torch.int32), max_seqlen=1, mmexport_groups=groups)
        return x

    def _merge(self, x: torch.Tensor, merge_index: torch.Tensor) -> torch.Tensor:
        return self.merger.mlp[0](self.tower.post_layernorm(x)[0][merge_index].flatten(1))


class StripSide(StripTower):
    """4x mode: every layer attends within each slice."""

    def forward(self, pixel_values, position_ids, frame_index, frame_valid, frame_inverse, merge_index):
        x = self._layers(self._embed(pixel_values, position_ids), (frame_index, frame_valid, frame_inverse), range(len(self.tower.encoder.layers)))
        return self._merge(x, merge_index)


class WindowedStripSide(StripTower):
    """16x mode: the window merger after layer insert_layer_id (its attention within the derived
    2x2 windows, each folded into one token), the later layers attending within each merged slice."""

    def forward(
        self,
        pixel_values,
        position_ids,
        frame_index,
        frame_valid,
        frame_inverse,
        window_index,
        window_groups,
        merged_index,
        merged_valid,
        merged_inverse,
        merge_index,
    ):
        insert, count = self.tower.config.insert_layer_id, len(self.tower.encoder.layers)
        x = self._layers(self._embed(pixel_values, position_ids), (frame_index, frame_valid, frame_inverse), range(insert + 1))
        x = self._window_merge(x, window_index, window_groups)
        x = self._layers(x, (merged_index, merged_valid, merged_inverse), range(insert + 1, count))
        return self._merge(x, merge_index)

    def _window_merge(self, x: torch.Tensor, window_index: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        merger = self.tower.vit_merger
        gathered = merger.layer_norm1(x)[:, window_index]
        inside = (windows, torch.ones_like(windows, dtype=torch.bool), torch.arange(window_index.shape[0], device=x.device))
        with within_groups(self.tower.config):
            attended, _ = merger.self_attn(hidden_states=gathered, cu_seqlens=torch.zeros(2, dtype=torch.int32), max_seqlen=4, mmexport_groups=inside)
        patch = (x[:, window_index] + attended).reshape(-1, 4, x.shape[-1])
        folded = merger.linear_2(merger.act(merger.linear_1(merger.pre_norm(patch.flatten(1)))))
        return (folded + patch.mean(dim=1))[None]


def strip_side(model: nn.Module) -> nn.Module:
    windowed = model.config.downsample_mode != "4x" and model.config.vision_config.insert_layer_id >= 0
    return (WindowedStripSide if windowed else StripSide)(model).eval()


FAMILY = Family(
    ("minicpmv4_6", "minicpmv4_7", "minicpm_ocr"),
    images=Strip(),
    video=Strip(video=True),
    parts=("vision_tower", "merger"),
    connector=None,
    vision=strip_side,
    pooled="split",
    settings=("downsample_mode",),
    notes=("the merger folds each slice's 2x2 neighbourhoods by its size: it is exported with the vision side (--vision-tower)",),
)
