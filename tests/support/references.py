"""Reference modules from transformers (the released implementations), with random weights,
and their checkpoints written in the key layouts users download."""

from __future__ import annotations

import torch
from transformers import Blip2Config, Blip2ForConditionalGeneration, LlavaConfig
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector


def llava_projector(vision_dim: int, llm_dim: int, seed: int = 0) -> LlavaMultiModalProjector:
    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=vision_dim, num_attention_heads=1),
        text_config=dict(model_type="llama", hidden_size=llm_dim, num_attention_heads=1, num_key_value_heads=1),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
    )
    projector = LlavaMultiModalProjector(config).eval()
    for p in projector.parameters():  # the default init is fine, but make biases non-zero
        torch.nn.init.normal_(p, std=0.05)
    return projector


def blip2(
    vision_dim: int = 40, hidden: int = 48, layers: int = 2, heads: int = 12, queries: int = 8, llm_dim: int = 24, intermediate: int = 64, seed: int = 0
) -> Blip2ForConditionalGeneration:
    """A full BLIP-2 (tiny vision tower and OPT too, so checkpoints carry foreign keys)."""
    torch.manual_seed(seed)
    config = Blip2Config(
        vision_config=dict(hidden_size=vision_dim, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14),
        qformer_config=dict(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=intermediate, encoder_hidden_size=vision_dim
        ),
        text_config=dict(
            model_type="opt", hidden_size=llm_dim, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2, vocab_size=50, word_embed_proj_dim=llm_dim
        ),
        num_query_tokens=queries,
    )
    config.qformer_config._attn_implementation = "eager"  # the plain reference math
    model = Blip2ForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.query_tokens.normal_(std=0.5)  # zeros by default; random queries test more
    return model


@torch.no_grad()
def blip2_connector_output(model: Blip2ForConditionalGeneration, features: torch.Tensor) -> torch.Tensor:
    """The path BLIP-2 takes from vision features to LLM inputs (Blip2ForConditionalGeneration.get_image_features)."""
    queries = model.query_tokens.expand(features.shape[0], -1, -1)
    out = model.qformer(query_embeds=queries, encoder_hidden_states=features).last_hidden_state
    return model.language_projection(out)


def to_lavis_keys(state_dict: dict[str, torch.Tensor], proj: str = "opt_proj") -> dict[str, torch.Tensor]:
    """Rename transformers' BLIP-2 keys to the LAVIS original names."""
    renamed = {}
    for key, value in state_dict.items():
        if key.startswith("qformer.layernorm."):
            key = key.replace("qformer.layernorm.", "Qformer.bert.embeddings.LayerNorm.")
        elif key.startswith("qformer."):
            key = "Qformer.bert." + key[len("qformer.") :]
            key = key.replace(".attention.attention.", ".attention.self.").replace(".crossattention.attention.", ".crossattention.self.")
        elif key.startswith("language_projection."):
            key = key.replace("language_projection.", f"{proj}.")
        elif key.startswith("vision_model."):
            key = "visual_encoder." + key[len("vision_model.") :]
        elif key.startswith("language_model."):
            key = "opt_model." + key[len("language_model.") :]
        renamed[key] = value
    return renamed


def save_llava_projector(path, vision_dim: int, llm_dim: int, seed: int = 0) -> LlavaMultiModalProjector:
    """A transformers-layout checkpoint (`multi_modal_projector.*`) of a random LLaVA projector."""
    from safetensors.torch import save_file

    projector = llava_projector(vision_dim, llm_dim, seed)
    save_file({f"multi_modal_projector.{k}": v.contiguous() for k, v in projector.state_dict().items()}, path)
    return projector
