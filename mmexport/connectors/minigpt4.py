"""MiniGPT-4's input side: BLIP-2's frozen Q-Former (32 queries) and `llama_proj` into Vicuna.
The module is the Q-Former connector; only the checkpoint names and the LLM width differ."""

from __future__ import annotations

from .base import Connector, KeyLayout
from .qformer import LAVIS_QFORMER_RULES, QFormerConfig, QFormerConnector, _from_weights, io_specs

CONNECTOR = Connector(
    name="minigpt4",
    family="q-former",
    systems=("MiniGPT-4", "MiniGPT-5"),
    presets={
        # EVA-CLIP-g 224 px (257 tokens after ln_vision) -> Q-Former -> llama_proj 768 -> 4096.
        "minigpt4-vicuna-7b": QFormerConfig(llm_dim=4096),
        "minigpt4-vicuna-13b": QFormerConfig(llm_dim=5120),
        "minigpt5": QFormerConfig(llm_dim=4096),  # same input side as MiniGPT-4 (Vicuna-7B)
    },
    default_preset="minigpt4-vicuna-7b",
    key_layouts=(
        # MiniGPT-4's model.state_dict() (LAVIS naming): query_tokens, Qformer.bert.*, llama_proj.*.
        KeyLayout(
            "minigpt4-original",
            tuple((r"(?:model\.)?" + pattern, replacement) for pattern, replacement in LAVIS_QFORMER_RULES)
            + ((r"(?:model\.)?llama_proj\.(weight|bias)", r"language_projection.\1"),),
        ),
    ),
    build=QFormerConnector,
    io=io_specs,
    config_from_weights=_from_weights,
    attention=True,
)
