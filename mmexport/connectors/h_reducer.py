"""DocOwl 1.5's H-Reducer (`MplugDocOwlHReducerModel`): drop CLS, a 1x4 conv with GELU, a
rearrange that folds the 4x channels back into width, a 1x4 conv, `visual_fc`, then `vit_eos`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Axis, Connector, KeyLayout, TensorSpec
from .blocks import grid_to_tokens, tokens_to_grid

CROPS = Axis("crops", min=1, opt=1, max=64, samples=(1, 2, 3))


@dataclass(frozen=True)
class HReducerConfig:
    vision_dim: int = 1024
    llm_dim: int = 4096
    grid: int = 32  # 448 px, patch 14
    conv_width: int = 4  # conv_shape 1x4


class HReducer(nn.Module):
    def __init__(self, config: HReducerConfig):
        super().__init__()
        d, k = config.vision_dim, config.conv_width
        self.grid, self.k = config.grid, k
        self.reducer_before = nn.Sequential(nn.Conv2d(d, k * d, (1, k), stride=(1, k)), nn.GELU())
        self.reducer = nn.Conv2d(d, d, (1, k), stride=(1, k))
        self.visual_fc = nn.Linear(d, config.llm_dim)
        self.vit_eos = nn.Parameter(torch.randn(1, 1, config.llm_dim) * 0.02)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        x = tokens_to_grid(vision_features[:, 1:], self.grid)  # (B, D, H, W)
        x = self.reducer_before(x)  # (B, k*D, H, W/k)
        # 'B (X D) H W -> B D H (W X)' with X = k
        x = x.unflatten(1, (self.k, -1)).permute(0, 2, 3, 4, 1).flatten(3)
        x = self.visual_fc(grid_to_tokens(self.reducer(x)))
        return torch.cat([x, self.vit_eos.expand(x.shape[0], -1, -1)], dim=1)


def io_specs(config: HReducerConfig):
    tokens_out = config.grid * config.grid // config.conv_width
    return (
        [TensorSpec("vision_features", (CROPS, 1 + config.grid * config.grid, config.vision_dim))],
        [TensorSpec("llm_embeds", (CROPS, tokens_out + 1, config.llm_dim))],
    )


def _from_weights(weights, config: HReducerConfig) -> HReducerConfig:
    llm_dim, vision_dim = weights["visual_fc.weight"].shape
    return HReducerConfig(vision_dim, llm_dim, config.grid, weights["reducer.weight"].shape[-1])


CONNECTOR = Connector(
    name="h-reducer",
    family="convolutional reducer",
    systems=("mPLUG-DocOwl 1.5", "DocOwl2 (H-Reducer stage)"),
    presets={"docowl-1.5": HReducerConfig()},
    default_preset="docowl-1.5",
    key_layouts=(
        KeyLayout(
            "docowl-original",
            (
                (r"(?:model\.)?vision2text\.((?:reducer_before\.0|reducer|visual_fc)\.(?:weight|bias))", r"\1"),
                (r"(?:model\.)?vision2text\.vit_eos", "vit_eos"),
            ),
        ),
    ),
    build=HReducer,
    io=io_specs,
    config_from_weights=_from_weights,
)
