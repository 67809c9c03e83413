"""LLaVA-1.5's mlp2x_gelu projector: Linear -> GELU (exact erf) -> Linear."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Connector, KeyLayout
from .linear import io_specs


@dataclass(frozen=True)
class MLPConfig:
    vision_dim: int
    llm_dim: int
    tokens: int
    bias: bool = True


class MLPProjector(nn.Module):
    """Parameter names follow transformers' LlavaMultiModalProjector."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.linear_1 = nn.Linear(config.vision_dim, config.llm_dim, bias=config.bias)
        self.act = nn.GELU()  # exact erf form, as released; not the tanh approximation
        self.linear_2 = nn.Linear(config.llm_dim, config.llm_dim, bias=config.bias)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(vision_features)))


def _from_weights(weights, config: MLPConfig) -> MLPConfig:
    llm_dim, vision_dim = weights["linear_1.weight"].shape
    return MLPConfig(vision_dim, llm_dim, config.tokens, bias="linear_1.bias" in weights)


CONNECTOR = Connector(
    name="mlp",
    family="projection",
    systems=("LLaVA-1.5", "LLaVA-NeXT", "ShareGPT4V", "LLaVA-OneVision"),
    presets={
        # CLIP ViT-L/14 336 px, penultimate layer, CLS dropped: 576 tokens of 1024.
        "llava-1.5-7b": MLPConfig(vision_dim=1024, llm_dim=4096, tokens=576),
        "llava-1.5-13b": MLPConfig(vision_dim=1024, llm_dim=5120, tokens=576),
        "llava-v1.6-vicuna-7b": MLPConfig(vision_dim=1024, llm_dim=4096, tokens=576),  # per 336 px tile
        "llava-v1.6-34b": MLPConfig(vision_dim=1024, llm_dim=7168, tokens=576),
        "sharegpt4v-7b": MLPConfig(vision_dim=1024, llm_dim=4096, tokens=576),
        # SigLIP-so400m 384 px (27x27 patches) into Qwen2-7B.
        "llava-onevision-qwen2-7b": MLPConfig(vision_dim=1152, llm_dim=3584, tokens=729),
    },
    default_preset="llava-1.5-7b",
    key_layouts=(
        KeyLayout(
            "transformers",
            ((r"(?:model\.)?multi_modal_projector\.(linear_[12])\.(weight|bias)", r"\1.\2"),),
        ),
        KeyLayout(
            "llava-original",
            (
                (r"(?:model\.)?mm_projector\.0\.(weight|bias)", r"linear_1.\1"),
                (r"(?:model\.)?mm_projector\.2\.(weight|bias)", r"linear_2.\1"),
            ),
        ),
    ),
    build=MLPProjector,
    io=io_specs,
    config_from_weights=_from_weights,
)
