"""LLaVA v1's projector: one Linear from the vision width to the LLM width."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import BATCH, Axis, Connector, KeyLayout, TensorSpec


def token_axis(opt: int) -> Axis:
    # Odd sizes below and above the release size catch reshapes baked into the graph.
    return Axis("tokens", min=1, opt=opt, max=4 * opt, samples=(opt, 7, opt + opt // 2 + 1))


@dataclass(frozen=True)
class LinearConfig:
    vision_dim: int
    llm_dim: int
    tokens: int  # vision tokens per image at the release resolution
    bias: bool = True


class LinearProjector(nn.Module):
    def __init__(self, config: LinearConfig):
        super().__init__()
        self.proj = nn.Linear(config.vision_dim, config.llm_dim, bias=config.bias)

    def forward(self, vision_features: torch.Tensor) -> torch.Tensor:
        return self.proj(vision_features)


def io_specs(config) -> tuple[list[TensorSpec], list[TensorSpec]]:
    tokens = token_axis(config.tokens)
    return (
        [TensorSpec("vision_features", (BATCH, tokens, config.vision_dim))],
        [TensorSpec("llm_embeds", (BATCH, tokens, config.llm_dim))],
    )


def _from_weights(weights, config: LinearConfig) -> LinearConfig:
    llm_dim, vision_dim = weights["proj.weight"].shape
    return LinearConfig(vision_dim, llm_dim, config.tokens, bias="proj.bias" in weights)


CONNECTOR = Connector(
    name="linear",
    family="projection",
    systems=("LLaVA v1", "MiniGPT-4 (llama_proj)", "PaliGemma", "PaliGemma 2"),
    presets={
        # CLIP ViT-L/14 224 px, last layer, CLS dropped: 256 tokens of 1024.
        "llava-v1-7b": LinearConfig(vision_dim=1024, llm_dim=4096, tokens=256),
        "llava-v1-13b": LinearConfig(vision_dim=1024, llm_dim=5120, tokens=256),
        # MiniGPT-4: llama_proj on the 32 Q-Former outputs (768 wide).
        "minigpt4-vicuna-7b": LinearConfig(vision_dim=768, llm_dim=4096, tokens=32),
        "minigpt4-vicuna-13b": LinearConfig(vision_dim=768, llm_dim=5120, tokens=32),
        # PaliGemma: SigLIP-so400m (no CLS, last layer) straight into Gemma: one Linear, no scaling.
        "paligemma-3b-224": LinearConfig(vision_dim=1152, llm_dim=2048, tokens=256),
        "paligemma-3b-448": LinearConfig(vision_dim=1152, llm_dim=2048, tokens=1024),
        "paligemma-3b-896": LinearConfig(vision_dim=1152, llm_dim=2048, tokens=4096),
        "paligemma2-3b-224": LinearConfig(vision_dim=1152, llm_dim=2304, tokens=256),
        "paligemma2-10b-224": LinearConfig(vision_dim=1152, llm_dim=3584, tokens=256),
        "paligemma2-28b-224": LinearConfig(vision_dim=1152, llm_dim=4608, tokens=256),
    },
    default_preset="llava-v1-7b",
    key_layouts=(
        KeyLayout("llava-original", ((r"(?:model\.)?mm_projector\.(weight|bias)", r"proj.\1"),)),
        KeyLayout("minigpt4-original", ((r"llama_proj\.(weight|bias)", r"proj.\1"),)),
        KeyLayout("paligemma-transformers", ((r"(?:model\.)?multi_modal_projector\.linear\.(weight|bias)", r"proj.\1"),)),
    ),
    build=LinearProjector,
    io=io_specs,
    config_from_weights=_from_weights,
)
