"""Honeybee's C-Abstractor: positional embedding, a RegNet stage (timm RegStage of Bottleneck
blocks: 1x1 conv, depthwise 3x3 conv, squeeze-excite, 1x1 conv, LayerNorm2d, SiLU), adaptive
average pooling to the query grid, a second stage, and a readout MLP (Linear, SiLU, Linear)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import BATCH, Connector, KeyLayout, TensorSpec
from .blocks import AdaptiveAvgPool2dAsMatMul, LayerNorm2d, grid_to_tokens, tokens_to_grid

NORM_EPS = 1e-5  # timm maps LayerNorm2d to LayerNormAct2d, whose default eps is 1e-5


@dataclass(frozen=True)
class CAbstractorConfig:
    vision_dim: int = 1024  # CLIP ViT-L/14
    hidden: int = 1024
    llm_dim: int = 4096
    depth: int = 3
    mlp_depth: int = 2
    tokens: int = 256  # 224 px, CLS dropped
    queries: int = 144


class ConvNormAct(nn.Module):
    """timm ConvNormAct: conv without bias, LayerNorm2d, optional SiLU (keys conv.*, bn.*)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False)
        self.bn = LayerNorm2d(cout, eps=NORM_EPS)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.silu(x) if self.act else x


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(F.silu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(scale)


class Bottleneck(nn.Module):
    """timm regnet Bottleneck with bottle_ratio 1, group_size 1 (depthwise), se_ratio 0.25."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout, 1)
        self.conv2 = ConvNormAct(cout, cout, 3, groups=cout)
        self.se = SqueezeExcite(cout, int(round(cin * 0.25)))
        self.conv3 = ConvNormAct(cout, cout, 1, act=False)
        self.downsample = ConvNormAct(cin, cout, 1, act=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.silu(self.conv3(self.se(self.conv2(self.conv1(x)))) + shortcut)


class RegStage(nn.Module):
    def __init__(self, depth: int, cin: int, cout: int):
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", Bottleneck(cin if i == 0 else cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.children():
            x = block(x)
        return x


class CAbstractor(nn.Module):
    def __init__(self, config: CAbstractorConfig):
        super().__init__()
        self.side = math.isqrt(config.tokens)
        self.pos_emb = nn.Parameter(torch.randn(1, config.tokens, config.vision_dim) * 0.02)
        self.net = nn.Sequential(
            RegStage(config.depth, config.vision_dim, config.hidden),
            AdaptiveAvgPool2dAsMatMul(self.side, math.isqrt(config.queries)),
            RegStage(config.depth, config.hidden, config.hidden),
        )
        readout: list[nn.Module] = [nn.Linear(config.hidden, config.llm_dim)]
        for _ in range(1, config.mlp_depth):
            readout += [nn.SiLU(), nn.Linear(config.llm_dim, config.llm_dim)]
        self.readout = nn.Sequential(*readout)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        x = tokens_to_grid(vision_features + self.pos_emb, self.side)
        return self.readout(grid_to_tokens(self.net(x)))


def io_specs(config: CAbstractorConfig):
    return (
        [TensorSpec("vision_features", (BATCH, config.tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (BATCH, config.queries, config.llm_dim))],
    )


def _from_weights(weights, config: CAbstractorConfig) -> CAbstractorConfig:
    _, tokens, vision_dim = weights["pos_emb"].shape
    depth = len({k.split(".")[2] for k in weights if k.startswith("net.0.")})
    readout = sorted(int(k.split(".")[1]) for k in weights if k.startswith("readout.") and k.endswith(".weight"))
    return CAbstractorConfig(
        vision_dim=vision_dim,
        hidden=weights["net.0.b1.conv1.conv.weight"].shape[0],
        llm_dim=weights[f"readout.{readout[-1]}.weight"].shape[0],
        depth=depth,
        mlp_depth=len(readout),
        tokens=tokens,
        queries=config.queries,
    )


def _adapt_weights(weights: dict) -> dict:
    """Old Honeybee checkpoints carry one more pos_emb row (for CLS); Honeybee drops it on load too."""
    pos = weights.get("pos_emb")
    if pos is not None and math.isqrt(pos.shape[1] - 1) ** 2 == pos.shape[1] - 1:
        weights = dict(weights, pos_emb=pos[:, 1:])
    return weights


CONNECTOR = Connector(
    name="c-abstractor",
    family="convolutional abstractor",
    systems=("Honeybee",),
    presets={
        "honeybee-c-7b": CAbstractorConfig(),
        "honeybee-c-13b": CAbstractorConfig(llm_dim=5120),
    },
    default_preset="honeybee-c-7b",
    key_layouts=(
        KeyLayout(
            "honeybee-original",
            ((r"(?:model\.)?abstractor\.(pos_emb|net\.[02]\..*|readout\..*)", r"\1"),),
        ),
    ),
    build=CAbstractor,
    io=io_specs,
    config_from_weights=_from_weights,
    adapt_weights=_adapt_weights,
)
