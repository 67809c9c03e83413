"""MobileVLM's Lightweight Downsample Projector. LDP (v1): MLP, then two MobileNetV3 inverted
residual blocks (depthwise 3x3 + Hardswish, squeeze-excite with Hardsigmoid, 1x1 projection; the
second with stride 2). LDPv2: MLP, average pooling to 12x12, a depthwise 3x3 positional conv with
a residual. Both: 576 -> 144 tokens. The preset chooses the version."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .base import BATCH, Connector, KeyLayout, TensorSpec
from .blocks import AdaptiveAvgPool2dAsMatMul, LayerNorm2d, grid_to_tokens, tokens_to_grid


@dataclass(frozen=True)
class LDPConfig:
    version: int = 1
    vision_dim: int = 1024  # CLIP ViT-L/14 336 px
    llm_dim: int = 2048  # MobileLLaMA 1.4B
    tokens: int = 576
    out_tokens: int = 144


def _make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's rounding for squeeze channels."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class ConvNorm(nn.Sequential):
    """torchvision Conv2dNormActivation with timm's LayerNormAct2d (keys 0 = conv, 1 = norm)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, hardswish: bool = False):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False), LayerNorm2d(cout, eps=1e-5))
        self.hardswish = hardswish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return F.hardswish(x) if self.hardswish else x


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * F.hardsigmoid(scale)


class InvertedResidual(nn.Module):
    """torchvision InvertedResidual with expand ratio 1, SE and Hardswish (keys block.{0,1,2})."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        self.residual = stride == 1
        self.block = nn.Sequential(
            ConvNorm(channels, channels, 3, stride, groups=channels, hardswish=True),
            SqueezeExcitation(channels, _make_divisible(channels // 4)),
            ConvNorm(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.residual else y


class LDPBlock(nn.Module):
    def __init__(self, config: LDPConfig):
        super().__init__()
        d = config.llm_dim
        self.side = math.isqrt(config.tokens)
        self.mlp = nn.Sequential(nn.Identity(), nn.Linear(config.vision_dim, d), nn.GELU(), nn.Linear(d, d))
        self.mb_block = nn.Sequential(nn.Identity(), InvertedResidual(d, 1), InvertedResidual(d, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grid_to_tokens(self.mb_block(tokens_to_grid(self.mlp(x), self.side)))


class LDPv1(nn.Module):
    def __init__(self, config: LDPConfig):
        super().__init__()
        self.model = LDPBlock(config)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        return self.model(vision_features)


class FeatureIRLayer(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(cin, cout), nn.GELU(), nn.Linear(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class PosInjectLayer(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.peg = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, groups=channels))

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.peg(grid) + grid


class LDPv2(nn.Module):
    def __init__(self, config: LDPConfig):
        super().__init__()
        self.side = math.isqrt(config.tokens)
        self.mlp = FeatureIRLayer(config.vision_dim, config.llm_dim)
        self.dwn = AdaptiveAvgPool2dAsMatMul(self.side, math.isqrt(config.out_tokens))
        self.peg = PosInjectLayer(config.llm_dim)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        grid = self.dwn(tokens_to_grid(self.mlp(vision_features), self.side))
        return grid_to_tokens(self.peg(grid))


def build(config: LDPConfig) -> nn.Module:
    return LDPv1(config) if config.version == 1 else LDPv2(config)


def io_specs(config: LDPConfig):
    return (
        [TensorSpec("vision_features", (BATCH, config.tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (BATCH, config.out_tokens, config.llm_dim))],
    )


def _from_weights(weights, config: LDPConfig) -> LDPConfig:
    version = 1 if "model.mlp.1.weight" in weights else 2
    first = weights["model.mlp.1.weight" if version == 1 else "mlp.mlp.0.weight"]
    return LDPConfig(version, first.shape[1], first.shape[0], config.tokens, config.out_tokens)


CONNECTOR = Connector(
    name="ldp",
    family="convolutional downsampler",
    systems=("MobileVLM", "MobileVLM V2"),
    presets={
        "mobilevlm-1.7b": LDPConfig(version=1, llm_dim=2048),
        "mobilevlm-3b": LDPConfig(version=1, llm_dim=2560),
        "mobilevlm-v2-1.7b": LDPConfig(version=2, llm_dim=2048),
        "mobilevlm-v2-3b": LDPConfig(version=2, llm_dim=2560),
        "mobilevlm-v2-7b": LDPConfig(version=2, llm_dim=4096),
    },
    default_preset="mobilevlm-1.7b",
    key_layouts=(
        KeyLayout(
            "mobilevlm-original",
            ((r"(?:model\.)?mm_projector\.((?:model|mlp|peg)\..*)", r"\1"),),
        ),
    ),
    build=build,
    io=io_specs,
    config_from_weights=_from_weights,
)
