"""Gemma 4: a ViT over each image's patches at its own aspect ratio (flat patches padded to the
batch's count, 2-D positions, rotary attention within the image), k x k average pooling by
position to soft tokens, scaling (and standardisation where the config says), then the
multimodal embedder into the LLM's width. Video: the same graph on every frame of every clip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...derivations import REGISTRY as DERIVATIONS
from ...derivations import Derivation, Derived, Feeds
from ...specs import Axis, TensorSpec
from ..family import Family
from ..layouts import _by_tokens, _pixels, typical_sizes
from ..model import module_path

Sample = dict[str, torch.Tensor]


VIDEO_NAMES = {"pixels": "pixel_values_videos", "positions": "video_position_ids", "videos": "num_frames_per_video"}
VIDEO_FRAMES = 16  # a bench request's clip


@dataclass(frozen=True)
class PositionedPatches:
    """pixel_values [images, patches, 3*P*P] padded to the batch's patch count and
    image_position_ids [images, patches, 2] ((column, row), -1 for padding). `video`: the video
    processor's pixel_values_videos and video_position_ids, a row per frame of every clip, and
    num_frames_per_video (the frames of each clip, in order)."""

    max_patches: int = 10080  # Gemma 4's largest budget: 1120 soft tokens of 3 x 3 patches
    video: bool = False
    max_frames: int = 128  # frames per call, every clip's together
    derives: ClassVar[str | None] = "the soft token each patch averages into, and which soft tokens are the images'"
    kind: ClassVar[str] = "pooled"  # the derivation beside the graph

    @property
    def called(self) -> dict[str, str]:
        return VIDEO_NAMES if self.video else {"pixels": "pixel_values", "positions": "image_position_ids"}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.called.values())

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        kernel = vision.pooling_kernel_size
        params = {"kernel": kernel, "patch_dim": 3 * vision.patch_size**2, "max_patches": self.max_patches, "opt_patches": 280 * kernel**2}
        params["patch_size"] = vision.patch_size  # pixels per position step
        return params | ({"names": dict(VIDEO_NAMES), "max_images": self.max_frames, "opt_patches": 70 * kernel**2} if self.video else {})

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get(self.kind).inputs(self.params(hf))

    def _images(self, hf: Any, blocks: list[tuple[int, int]], seed: int, patches: int | None = None, frames: list[int] | None = None) -> Sample:
        """Images (or clips of `frames` frames) of (rows, columns) pooling blocks, patches in
        row-major order, padded as the processor pads; a clip's frames pan across one picture."""
        params, called = self.params(hf), self.called
        k = params["kernel"]
        frames = frames or [1] * len(blocks)
        patches = patches or max(r * c for r, c in blocks) * k * k
        pixels = torch.zeros(sum(frames), patches, params["patch_dim"])
        positions = torch.full((sum(frames), patches, 2), -1, dtype=torch.long)
        row = 0
        for j, ((r, c), count) in enumerate(zip(blocks, frames)):
            grid_rows, grid_cols = torch.meshgrid(torch.arange(r * k), torch.arange(c * k), indexing="ij")
            n = r * c * k * k
            picture = _pixels((n + count, params["patch_dim"]), seed + j).sigmoid()  # in [0, 1], as the processor rescales
            for f in range(count):
                positions[row, :n] = torch.stack([grid_cols.flatten(), grid_rows.flatten()], 1)
                pixels[row, :n] = picture[f : f + n]
                row += 1
        sample = {called["pixels"]: pixels, called["positions"]: positions}
        return sample | ({called["videos"]: torch.tensor(frames)} if self.video else {})

    def samples(self, hf: Any) -> list[Sample]:
        k2 = self.params(hf)["kernel"] ** 2
        cases = ([(2, 3)], [(1, 1), (3, 2)], [(3, 1), (1, 2), (2, 2)])
        frames = ([2], [1, 3], [2, 1, 2]) if self.video else ([1], [1, 1], [1, 1, 1])
        return [self._images(hf, blocks, 70 + 3 * i, patches=(6 + i) * k2, frames=f) for i, (blocks, f) in enumerate(zip(cases, frames))]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of(self.kind, self.params(hf))

    def first_axis(self, hf: Any) -> Axis:  # a row of the embedder's input is a soft token
        return DERIVATIONS.get(self.kind).axes(self.params(hf))["tokens"]

    def collate(self, items: list[Feeds]) -> Feeds:
        pixels_name, positions_name = self.called["pixels"], self.called["positions"]
        patches = max(i[pixels_name].shape[1] for i in items)
        pixels = np.concatenate([np.pad(i[pixels_name], ((0, 0), (0, patches - i[pixels_name].shape[1]), (0, 0))) for i in items])
        positions = [np.pad(i[positions_name], ((0, 0), (0, patches - i[positions_name].shape[1]), (0, 0)), constant_values=-1) for i in items]
        collated = {pixels_name: pixels.astype(np.float32), positions_name: np.concatenate(positions)}
        return collated | ({VIDEO_NAMES["videos"]: np.concatenate([np.asarray(i[VIDEO_NAMES["videos"]]).reshape(-1) for i in items])} if self.video else {})

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        params = self.params(hf)
        unit = params["patch_size"] * params["kernel"]  # pixels per soft token's side
        frames = [VIDEO_FRAMES] * images if self.video else None
        return self._images(hf, [(h // unit, w // unit) for h, w in typical_sizes(images, seed)], 1000 + seed, frames=frames)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        positions = np.asarray(feeds[self.called["positions"]])
        valid = (positions != -1).all(-1)
        p = self.params(hf)["patch_size"]
        sizes = [f"{(row[..., 1].max() + 1) * p}x{(row[..., 0].max() + 1) * p}" for row in (pos[v] for pos, v in zip(positions, valid))]
        if self.video:
            counts = np.asarray(feeds.get(VIDEO_NAMES["videos"], [len(positions)])).reshape(-1)
            starts = np.cumsum(counts) - counts
            return f"{len(counts)} clip(s) of {', '.join(f'{n} frames of {sizes[s]}' for n, s in zip(counts, starts))} ({int(valid.sum())} patches)"
        return f"{len(positions)} image(s) {', '.join(sizes)} ({int(valid.sum())} patches)"


class PooledSide(nn.Module):
    """transformers' own patch embedder and encoder (attending within each image, padding masked),
    then the pooling as a matmul over the derived soft-token index, in fp32 as transformers scales
    it, the derived kept tokens gathered, standardised, and transformers' own embedder."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.tower = model.get_submodule(module_path(model, "vision_tower"))
        self.embedder = model.get_submodule(module_path(model, "embed_vision"))

    def forward(self, pixel_values, image_position_ids, pool_index, keep_index):
        tower, config = self.tower, self.tower.config
        padding = (image_position_ids == -1).all(dim=-1)
        embeds = tower.patch_embedder(pixel_values, image_position_ids, padding)
        states = tower.encoder(inputs_embeds=embeds, attention_mask=~padding, pixel_position_ids=image_position_ids).last_hidden_state
        states = states.masked_fill(padding.unsqueeze(-1), 0.0).float()
        slots = torch.arange(pixel_values.shape[1] // config.pooling_kernel_size**2, device=pool_index.device)
        weights = (pool_index.unsqueeze(1) == slots[None, :, None]).float() / config.pooling_kernel_size**2  # [images, tokens, patches]
        pooled = (weights @ states) * tower.pooler.root_hidden_size
        kept = pooled.reshape(-1, pooled.shape[-1])[keep_index]
        if config.standardize:
            kept = (kept - tower.std_bias.float()) * tower.std_scale.float()
        return self.embedder(inputs_embeds=kept.to(embeds.dtype))


def pooled_side(model: nn.Module) -> nn.Module:
    return PooledSide(model).eval()


FAMILY = Family(
    ("gemma4",),
    images=PositionedPatches(),
    video=PositionedPatches(video=True),  # get_video_features: the same tower and pooling on every frame, split per clip
    parts=("vision_tower", "embed_vision"),
    connector=("embed_vision",),
    vision=pooled_side,
    pooled="split",
    notes=("the soft-token pooling and padding removal are derived beside the graph from image_position_ids",),
)
