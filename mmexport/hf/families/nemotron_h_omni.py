"""Nemotron-H Omni: a C-RADIO tower over NaViT-packed patches of each image (its position table
resized to a max(h, w) square and cropped to the grid, class and register tokens per image,
attention within each image, features without those tokens), an optional final LayerNorm,
InternVL's pixel shuffle of each image's 2x2 neighbourhoods and its MLP projector. Video: tubelets of frames stacked along the channels, each through the same path with
the tower's video patch projection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ...derivations import REGISTRY as DERIVATIONS
from ...derivations import Derivation, Derived, Feeds
from ...errors import InputError, UsageError
from ...specs import Axis, TensorSpec
from ..attention import within_groups
from ..family import Family
from ..layouts import MAX_VIDEO_FRAMES, MAX_VIDEO_PATCHES, VIDEO_FRAMES, Sample, _by_tokens, _pixels, typical_sizes


@dataclass(frozen=True)
class GridPatches:
    """pixel_values [patches, C*P*P] (each image's patches row-major, channel-major within) and
    image_grid_hw [images, 2] (rows, columns of patches, even)."""

    names: ClassVar[tuple[str, ...]] = ("pixel_values", "image_grid_hw")
    derives: ClassVar[str | None] = "cropped position-table taps, per-image attention groups with its class tokens, 2x2 shuffle neighbourhoods"

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        prefix = vision.num_cls_tokens + vision.num_registers
        return {
            "patch_dim": vision.num_channels * vision.patch_size**2,
            "side": vision.max_img_size // vision.patch_size,
            "prefix": prefix,
            "patch": vision.patch_size,
        }

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("prefixed").inputs(self.params(hf))

    def _images(self, hf: Any, sizes: list[tuple[int, int]], seed: int) -> Sample:
        pixels = _pixels((sum(h * w for h, w in sizes), self.params(hf)["patch_dim"]), seed)
        return {"pixel_values": pixels, "image_grid_hw": torch.tensor(sizes)}

    def samples(self, hf: Any) -> list[Sample]:
        cases = ([(2, 3)], [(1, 1), (3, 2)], [(3, 1), (1, 2), (2, 2)])  # in 2x2 blocks
        return [self._images(hf, [(2 * h, 2 * w) for h, w in shapes], 60 + i) for i, shapes in enumerate(cases)]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("prefixed", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("prefixed").axes(self.params(hf))["patches"]

    def collate(self, items: list[Feeds]) -> Feeds:
        return {name: np.concatenate([i[name] for i in items]) for name in self.names}

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        unit = 2 * self.params(hf)["patch"]
        return self._images(hf, [(h // unit * 2, w // unit * 2) for h, w in typical_sizes(images, seed)], 1000 + seed)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        p, sizes = self.params(hf)["patch"], np.asarray(feeds["image_grid_hw"])
        return f"{len(sizes)} image(s) {', '.join(f'{h * p}x{w * p}' for h, w in sizes.tolist())} ({int(sizes.prod(1).sum())} patches)"


@dataclass(frozen=True)
class Tubelets:
    """pixel_values_videos [clips, tubelets, T*C, H, W]: its video processor's tubelets of T frames
    stacked along the channels, the clips of a call one size and length (one tensor, as transformers takes them)."""

    names: ClassVar[tuple[str, ...]] = ("pixel_values_videos",)
    derives: ClassVar[str | None] = (
        "each tubelet's patch rows, cropped position-table taps, per-tubelet attention groups with its class tokens, 2x2 shuffle neighbourhoods"
    )

    def params(self, hf: Any) -> dict[str, Any]:
        vision, frames = hf.vision_config, hf.vision_config.video_temporal_patch_size
        channels = frames * vision.num_channels
        video = {"channels": channels, "patch_dim": channels * vision.patch_size**2, "frames": frames}
        return GridPatches().params(hf) | video | {"max_patches": MAX_VIDEO_PATCHES, "max_images": MAX_VIDEO_FRAMES}

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("tubelets").inputs(self.params(hf))

    def _clips(self, hf: Any, clips: int, tubelets: int, rows: int, cols: int, seed: int) -> Sample:
        params = self.params(hf)
        return {"pixel_values_videos": _pixels((clips, tubelets, params["channels"], rows * params["patch"], cols * params["patch"]), seed)}

    def samples(self, hf: Any) -> list[Sample]:
        cases = ((1, 2, 2, 3), (2, 3, 3, 1), (1, 4, 2, 2))  # clips, tubelets, rows and columns of 2x2 blocks
        return [self._clips(hf, c, t, 2 * r, 2 * w, 80 + i) for i, (c, t, r, w) in enumerate(cases)]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("tubelets", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("tubelets").axes(self.params(hf))["clips"]

    def collate(self, items: list[Feeds]) -> Feeds:
        if len({i["pixel_values_videos"].shape[1:] for i in items}) > 1:
            raise InputError("clips of one call must share their length and frame size (pixel_values_videos is one tensor); send the others in another call")
        return {"pixel_values_videos": np.concatenate([i["pixel_values_videos"] for i in items])}

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        params = self.params(hf)
        unit, (height, width) = 2 * params["patch"], typical_sizes(1, seed)[0]
        return self._clips(hf, images, max(1, VIDEO_FRAMES // params["frames"]), height // unit * 2, width // unit * 2, 1000 + seed)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        clips, tubelets, _, height, width = feeds["pixel_values_videos"].shape
        return f"{clips} clip(s) of {tubelets * self.params(hf)['frames']} frames of {height}x{width}"


class PrefixedSide(nn.Module):
    """transformers' own patch projection and RADIO layers, the cropped position table by the derived
    taps, each image's class and register tokens appended after all patches and joined to its
    attention group, the features (patches) normed and shuffled by the derived 2x2 gather, and the
    projector."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.radio, self.norm, self.projector = model.vision_model, model.vision_final_layernorm, model.multi_modal_projector
        if model.config.downsample_ratio != 0.5:
            raise UsageError(f"downsample_ratio {model.config.downsample_ratio}: mmexport reads Nemotron-H Omni's 2x2 pixel shuffle (0.5)")

    def forward(self, pixel_values, pos_index, pos_weight, frame_index, frame_valid, frame_inverse, merge_index):
        radio = self.radio
        config, embeddings = radio.config, radio.embeddings
        video = pixel_values.shape[-1] != config.num_channels * config.patch_size**2  # tubelets: frames stacked along the channels
        channels = pixel_values.shape[-1] // config.patch_size**2
        x = radio.input_conditioner(pixel_values.view(-1, channels, config.patch_size, config.patch_size)).flatten(1)
        x = (embeddings.video_patch_projection if video else embeddings.patch_projection)(x)
        table = embeddings.position_embedding[0].float()
        x = x + (table[pos_index] * pos_weight[:, :, None]).sum(1).to(x.dtype)
        prefix = embeddings.cls_register_token[None].expand(frame_index.shape[0], -1, -1).reshape(-1, x.shape[-1])
        states = torch.cat([x, prefix.to(x.dtype)])[None]
        with within_groups(config):
            for layer in radio.encoder.layer:
                states = layer(states, cu_seqlens=torch.zeros(2, dtype=torch.int32), max_seqlen=1, mmexport_groups=(frame_index, frame_valid, frame_inverse))
        features = states[0, : x.shape[0]]
        if self.norm is not None:
            features = self.norm(features)
        return self.projector(features[merge_index].flatten(1))


def prefixed_side(model: nn.Module) -> nn.Module:
    return PrefixedSide(model).eval()


FAMILY = Family(
    ("nemotron_h_omni",),
    images=GridPatches(),
    video=Tubelets(),
    parts=("vision_model", "multi_modal_projector"),
    connector=None,
    vision=prefixed_side,
    pooled="split",
    notes=("the pixel shuffle follows each image's grid: the vision side is exported whole (--vision-tower)",),
)
