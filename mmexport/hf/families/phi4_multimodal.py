"""Phi-4-multimodal's image side: a SigLIP tower (NaViT-style bucketed positions and a patch mask)
over each image's global crop and HD sub-crops, its features at `feature_layer`, pooled 2x2, the
sub-crop canvas cut to the image and a learned newline after each row, a learned separator, the
global crop's rows with newlines, then the two-layer projection. transformers computes this in
Phi4MultimodalImageEmbedding inside the forward (there is no get_image_features): the reference
runs that module itself; attach answers it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...derivations import REGISTRY as DERIVATIONS
from ...derivations import Derivation, Derived, Feeds
from ...specs import Axis, TensorSpec
from ..family import Family
from ..layouts import Sample, _by_tokens, _pixels, typical_sizes
from ..model import module_path

WHITE = 1.0  # the processor pads the canvas with white, 0.5-mean/std normalised


def hd_canvas(height: int, width: int, size: int, patch: int) -> tuple[int, int, int, int]:
    """The processor's crop grid for an image (rows, columns of crops) and the padding patches at
    the canvas's bottom and right (within the 36-crop limit, where it keeps the aspect ratio)."""
    rows, cols = math.ceil(height / size), math.ceil(width / size)
    if cols * size / width < rows * size / height:
        return rows, cols, (rows * size - int(height * cols * size / width)) // patch, 0
    return rows, cols, 0, (cols * size - int(width * rows * size / height)) // patch


@dataclass(frozen=True)
class HdCrops:
    """image_pixel_values [batch, crops, 3, S, S] (global crop, sub-crops; zero padding crops),
    image_sizes [batch, 2] (the canvas) and image_attention_mask [batch, crops, S/P, S/P]."""

    names: ClassVar[tuple[str, ...]] = ("image_pixel_values", "image_sizes", "image_attention_mask")
    derives: ClassVar[str | None] = "real crops, each image token's row among the pooled features and separators"

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        side = vision.crop_size // vision.patch_size
        return {"size": vision.crop_size, "patch": vision.patch_size, "side": side, "pooled": (side + 1) // 2}

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("hd_crops").inputs(self.params(hf))

    def _images(self, hf: Any, sizes: list[tuple[int, int]], seed: int) -> Sample:
        """Samples in the processor's layout for images of these pixel sizes."""
        params = self.params(hf)
        size, side, patch = params["size"], params["side"], params["patch"]
        grids = [hd_canvas(h, w, size, patch) for h, w in sizes]
        crops = max(r * c for r, c, _, _ in grids) + 1
        pixels = torch.zeros(len(sizes), crops, 3, size, size)
        mask = torch.ones(len(sizes), crops, side, side)
        for image, (rows, cols, pad_h, pad_w) in enumerate(grids):
            canvas = _pixels((3, rows * size, cols * size), seed + image)
            hd_mask = torch.ones(rows * side, cols * side)
            hd_mask[hd_mask.shape[0] - pad_h :], hd_mask[:, hd_mask.shape[1] - pad_w :] = 0, 0
            canvas[:, canvas.shape[1] - pad_h * patch :], canvas[:, :, canvas.shape[2] - pad_w * patch :] = WHITE, WHITE
            subs = canvas.reshape(3, rows, size, cols, size).permute(1, 3, 0, 2, 4).reshape(-1, 3, size, size)
            pixels[image, : rows * cols + 1] = torch.cat([_pixels((1, 3, size, size), seed + 50 + image), subs])
            mask[image, 1 : rows * cols + 1] = hd_mask.reshape(rows, side, cols, side).permute(0, 2, 1, 3).reshape(-1, side, side)
        return {"image_pixel_values": pixels, "image_sizes": torch.tensor([[r * size, c * size] for r, c, _, _ in grids]), "image_attention_mask": mask}

    def samples(self, hf: Any) -> list[Sample]:
        s = self.params(hf)["size"]
        cases = ([(s, s)], [(s * 3 // 5, s * 17 // 10), (s * 6 // 5, s * 9 // 10)], [(s * 2, s * 5 // 4), (s // 2, s // 2), (s * 7 // 10, s * 21 // 10)])
        return [self._images(hf, list(sizes), 70 + 10 * i) for i, sizes in enumerate(cases)]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("hd_crops", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("hd_crops").axes(self.params(hf))["real_crops"]

    def collate(self, items: list[Feeds]) -> Feeds:
        """Samples padded to the most crops as the processor pads: zero pixels, an all-ones mask."""
        crops = max(i["image_pixel_values"].shape[1] for i in items)

        def padded(name: str, value: float) -> np.ndarray:
            parts = [np.asarray(i[name]) for i in items]
            return np.concatenate([np.pad(p, [(0, 0), (0, crops - p.shape[1])] + [(0, 0)] * (p.ndim - 2), constant_values=value) for p in parts])

        return {
            "image_pixel_values": padded("image_pixel_values", 0.0),
            "image_sizes": np.concatenate([i["image_sizes"] for i in items]),
            "image_attention_mask": padded("image_attention_mask", 1.0),
        }

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        scale = self.params(hf)["size"] / 448  # the typical photos at the release's crop size
        return self._images(hf, [(max(1, int(h * scale)), max(1, int(w * scale))) for h, w in typical_sizes(images, seed)], 1000 + seed)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        sizes = np.asarray(feeds["image_sizes"]).reshape(-1, 2)
        return f"{len(sizes)} image(s) on canvases {', '.join(f'{h}x{w}' for h, w in sizes.tolist())} ({feeds['image_pixel_values'].shape[1]} crops each)"


def _image_embedding(model: nn.Module) -> nn.Module:
    return model.get_submodule(module_path(model, "image_embed"))


class HdSide(nn.Module):
    """transformers' own tower embedding and layers (up to feature_layer) over the real crops, its
    2x2 pooling, the features and the two separators placed by the derived token index, and its
    projection."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.embed = _image_embedding(model)
        tower = self.embed.img_processor
        self.layers = tower.encoder.layers[: self.embed.layer_idx % (len(tower.encoder.layers) + 1)]  # hidden_states[0]: the embeddings
        self.side = self.embed.crop_size // tower.config.patch_size

    def forward(self, image_pixel_values, image_attention_mask, real_crops, token_index):
        embed, tower = self.embed, self.embed.img_processor
        pixels = image_pixel_values.flatten(0, 1)[real_crops].to(tower.embeddings.patch_embedding.weight.dtype)
        patches = image_attention_mask.flatten(0, 1)[real_crops] != 0
        x = tower.embeddings(pixel_values=pixels, patch_attention_mask=patches)
        # an additive key mask, always passed: with none, transformers' attention turns causal (see `bidirectional`)
        mask = torch.where(patches.view(x.shape[0], 1, 1, -1), 0.0, torch.finfo(x.dtype).min).to(x.dtype)
        for layer in self.layers:
            x = layer(x, mask)
        grid = x.view(-1, self.side, self.side, x.shape[-1]).permute(0, 3, 1, 2)
        if getattr(embed, "img_processor_padding", None) is not None:
            grid = embed.img_processor_padding(grid)
        pooled = embed.image_token_compression(grid).permute(0, 2, 3, 1).reshape(-1, x.shape[-1])
        separators = torch.cat([embed.sub_img_feature_extensor.reshape(1, -1), embed.global_img_feature_extensor.reshape(1, -1)])
        rows = torch.cat([pooled, separators.to(pooled.dtype)])[token_index]
        return embed.img_projection_down(F.gelu(embed.img_projection_up(rows)))


def hd_side(model: nn.Module) -> nn.Module:
    return HdSide(model).eval()


class HdReference(nn.Module):
    """transformers' Phi4MultimodalImageEmbedding itself, given a prompt of image tokens only (as
    many as the derivation counts: a wrong count makes its index_put fail, not pass)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.embed = _image_embedding(model)
        self.params = HdCrops().params(model.config)
        self.token = model.config.vision_config.image_token_id

    def forward(self, image_pixel_values, image_sizes, image_attention_mask):
        feeds = {"image_pixel_values": image_pixel_values.numpy(), "image_sizes": image_sizes.numpy(), "image_attention_mask": image_attention_mask.numpy()}
        count = sum(DERIVATIONS.get("hd_crops").split(feeds, self.params))
        ids = torch.full((1, count), self.token)
        zeros = torch.zeros(1, count, self.embed.img_projection_down.out_features, dtype=self.embed.img_projection_up.weight.dtype)
        with bidirectional(self.embed.img_processor):
            return self.embed(ids, zeros, image_pixel_values, image_sizes, image_attention_mask)[0]


@contextmanager
def bidirectional(tower: nn.Module) -> Iterator[None]:
    """transformers' eager attention for the tower: its sdpa path attends causally when no crop of
    the batch is padded (the port marks the SigLIP attention is_causal and drops an all-ones mask),
    which the released SigLIP never does; eager attention, the original's, sees the whole crop."""
    config = tower.config
    was = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = was


def attach_vision(model: nn.Module, artifact: nn.Module) -> None:
    """The image embedding's forward answers with the artifact and places its rows at the image tokens, as transformers does."""
    embed = _image_embedding(model)
    token = model.config.vision_config.image_token_id

    def forward(input_ids, inputs_embeds, image_pixel_values, image_sizes=None, image_attention_mask=None):
        features = artifact(image_pixel_values=image_pixel_values, image_sizes=image_sizes, image_attention_mask=image_attention_mask)[0]
        positions = torch.nonzero(input_ids == token, as_tuple=True)
        return inputs_embeds.index_put(positions, features.to(inputs_embeds.dtype), accumulate=False)

    object.__setattr__(embed, "forward", forward)


FAMILY = Family(
    ("phi4_multimodal",),
    images=HdCrops(),
    parts=("image_embed",),
    connector=None,
    vision=hd_side,
    reference=HdReference,
    pooled="split",
    attach_vision=attach_vision,
    features_as=None,
    auto_class="AutoModelForCausalLM",
    notes=(
        "images only (its audio side is not exported); the HD canvas is cut and separated per image: the vision side is exported whole (--vision-tower)",
        "its forward takes no precomputed image features: use mmexport.attach (encoder_outputs has nothing to hand it)",
    ),
)
