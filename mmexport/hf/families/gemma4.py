"""Gemma 4: a ViT over each image's patches at its own aspect ratio (flat patches padded to the
batch's count, 2-D positions, rotary attention within the image), k x k average pooling by
position to soft tokens, scaling (and standardisation where the config says), then the
multimodal embedder into the LLM's width."""

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


@dataclass(frozen=True)
class PositionedPatches:
    """pixel_values [images, patches, 3*P*P] padded to the batch's patch count and
    image_position_ids [images, patches, 2] ((column, row), -1 for padding)."""

    max_patches: int = 10080  # Gemma 4's largest budget: 1120 soft tokens of 3 x 3 patches
    names: ClassVar[tuple[str, ...]] = ("pixel_values", "image_position_ids")
    derives: ClassVar[str | None] = "the soft token each patch averages into, and which soft tokens are the images'"

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        kernel = vision.pooling_kernel_size
        return {"kernel": kernel, "patch_dim": 3 * vision.patch_size**2, "max_patches": self.max_patches, "opt_patches": 280 * kernel**2}

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("pooled").inputs(self.params(hf))

    def _images(self, hf: Any, blocks: list[tuple[int, int]], seed: int, patches: int | None = None) -> Sample:
        """Images of (rows, columns) pooling blocks, patches in row-major order, padded as the processor pads."""
        params = self.params(hf)
        k = params["kernel"]
        patches = patches or max(r * c for r, c in blocks) * k * k
        pixels = torch.zeros(len(blocks), patches, params["patch_dim"])
        positions = torch.full((len(blocks), patches, 2), -1, dtype=torch.long)
        for j, (r, c) in enumerate(blocks):
            rows, cols = torch.meshgrid(torch.arange(r * k), torch.arange(c * k), indexing="ij")
            n = r * c * k * k
            positions[j, :n] = torch.stack([cols.flatten(), rows.flatten()], 1)
            pixels[j, :n] = _pixels((n, params["patch_dim"]), seed + j).sigmoid()  # in [0, 1], as the processor rescales
        return {"pixel_values": pixels, "image_position_ids": positions}

    def samples(self, hf: Any) -> list[Sample]:
        k2 = hf.vision_config.pooling_kernel_size**2
        cases = ([(2, 3)], [(1, 1), (3, 2)], [(3, 1), (1, 2), (2, 2)])
        return [self._images(hf, blocks, 70 + 3 * i, patches=(6 + i) * k2) for i, blocks in enumerate(cases)]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("pooled", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:  # a row of the embedder's input is a soft token
        return DERIVATIONS.get("pooled").axes(self.params(hf))["tokens"]

    def collate(self, items: list[Feeds]) -> Feeds:
        patches = max(i["pixel_values"].shape[1] for i in items)
        pixels = np.concatenate([np.pad(i["pixel_values"], ((0, 0), (0, patches - i["pixel_values"].shape[1]), (0, 0))) for i in items])
        positions = [np.pad(i["image_position_ids"], ((0, 0), (0, patches - i["image_position_ids"].shape[1]), (0, 0)), constant_values=-1) for i in items]
        return {"pixel_values": pixels.astype(np.float32), "image_position_ids": np.concatenate(positions)}

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        unit = hf.vision_config.patch_size * hf.vision_config.pooling_kernel_size
        return self._images(hf, [(h // unit, w // unit) for h, w in typical_sizes(images, seed)], 1000 + seed)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        positions = np.asarray(feeds["image_position_ids"])
        valid = (positions != -1).all(-1)
        p = hf.vision_config.patch_size
        sizes = [f"{(row[..., 1].max() + 1) * p}x{(row[..., 0].max() + 1) * p}" for row in (pos[v] for pos, v in zip(positions, valid))]
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
    parts=("vision_tower", "embed_vision"),
    connector=("embed_vision",),
    vision=pooled_side,
    pooled="split",
    notes=("the soft-token pooling and padding removal are derived beside the graph from image_position_ids",),
)
