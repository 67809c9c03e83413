"""Attention connectors against their originals: transformers classes (InstructBLIP, Idefics2,
BLIP-2's Q-Former for MiniGPT-4) or faithful re-implementations of the original repositories'
code (tests/original_attention.py), through checkpoints written in the released key layouts."""

from __future__ import annotations

import pytest
import support.original_attention as original
import torch
from safetensors.torch import save_file
from support.checks import assert_matches_at, assert_matches_feeds
from support.cli import assert_one_line, export
from support.references import blip2, blip2_connector_output, to_lavis_keys


def _randomize(module: torch.nn.Module, seed: int, std: float = 0.3) -> None:
    """Non-trivial values everywhere (LayerNorm weights and biases too), except frozen tables."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for _, p in module.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * std)


def test_minigpt4_original_checkpoint(cli, tmp_path):
    model = blip2(seed=11, llm_dim=56)
    # MiniGPT-4's model.state_dict(): LAVIS Q-Former names, llama_proj, plus the EVA tower.
    state = to_lavis_keys(model.state_dict(), proj="llama_proj")
    state["ln_vision.weight"] = torch.ones(40)
    torch.save({"model": state}, tmp_path / "minigpt4.pth")
    out, manifest = export(cli, tmp_path, "minigpt4", tmp_path / "minigpt4.pth")
    assert manifest["weights"]["layout"] == "minigpt4-original" and manifest["config"]["llm_dim"] == 56
    assert_matches_at(out, lambda x: blip2_connector_output(model, x), [(1, 9, 40), (2, 7, 40), (3, 31, 40)])


def _instructblip(seed: int):
    from transformers import InstructBlipQFormerConfig, InstructBlipQFormerModel

    torch.manual_seed(seed)
    config = InstructBlipQFormerConfig(
        hidden_size=48, num_hidden_layers=3, num_attention_heads=12, intermediate_size=64, encoder_hidden_size=40, vocab_size=120, max_position_embeddings=64
    )
    config._attn_implementation = "eager"
    qformer = InstructBlipQFormerModel(config).eval()
    query_tokens = torch.randn(1, 8, 48)
    projection = torch.nn.Linear(48, 36)
    _randomize(qformer, seed, std=0.05)

    def reference(vision_features, qformer_input_ids, qformer_attention_mask):
        # InstructBlipModel.get_image_features
        queries = query_tokens.expand(vision_features.shape[0], -1, -1)
        mask = torch.cat([torch.ones(queries.shape[:-1], dtype=torch.long), qformer_attention_mask], dim=1)
        out = qformer(input_ids=qformer_input_ids, attention_mask=mask, query_embeds=queries, encoder_hidden_states=vision_features)
        return projection(out.last_hidden_state[:, : queries.shape[1], :])

    state = {"query_tokens": query_tokens} | {f"qformer.{k}": v for k, v in qformer.state_dict().items()}
    state |= {f"language_projection.{k}": v for k, v in projection.state_dict().items()}
    return state, reference


def _text_feed(batch: int, tokens: int, text: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, text + 1, (batch,), generator=g)
    mask = (torch.arange(text)[None, :] < lengths[:, None]).long()
    ids = torch.randint(1, 120, (batch, text), generator=g) * mask
    return {"vision_features": torch.randn(batch, tokens, 40, generator=g), "qformer_input_ids": ids, "qformer_attention_mask": mask}


def test_instructblip_transformers_layout_with_padded_instructions(cli, tmp_path):
    state, reference = _instructblip(seed=12)
    state["language_model.lm_head.weight"] = torch.randn(10, 36)  # a full-model checkpoint
    save_file({f"model.{k}" if not k.startswith("language_model") else k: v.contiguous() for k, v in state.items()}, tmp_path / "instructblip.safetensors")
    out, manifest = export(cli, tmp_path, "instructblip", tmp_path / "instructblip.safetensors")
    assert manifest["weights"]["layout"] == "transformers" and manifest["weights"]["ignored_keys"] == 1
    assert [s["name"] for s in manifest["inputs"]] == ["vision_features", "qformer_input_ids", "qformer_attention_mask"]
    feeds = [_text_feed(1, 9, 5, 1), _text_feed(2, 7, 1, 2), _text_feed(3, 31, 17, 3)]
    assert_matches_feeds(out, reference, feeds)


def _instructblip_lavis_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers InstructBLIP names -> LAVIS blip2_vicuna_instruct names."""
    renamed = {}
    for key, value in state.items():
        key = key.replace("qformer.embeddings.layernorm.", "Qformer.bert.embeddings.LayerNorm.")
        key = key.replace("qformer.embeddings.", "Qformer.bert.embeddings.").replace("qformer.encoder.", "Qformer.bert.encoder.")
        key = key.replace(".attention.attention.", ".attention.self.").replace(".crossattention.attention.", ".crossattention.self.")
        renamed[key.replace("language_projection.", "llm_proj.")] = value
    return renamed


@pytest.mark.slow  # over 10 s on 2 cores: the full suite (CI) runs it, the fast tier stays under 4 min
def test_instructblip_lavis_original_checkpoint(cli, tmp_path):
    state, reference = _instructblip(seed=19)
    lavis = _instructblip_lavis_keys(state) | {"Qformer.cls.predictions.bias": torch.zeros(120)}
    torch.save({"model": lavis}, tmp_path / "instruct_blip_vicuna7b_trimmed.pth")
    out, manifest = export(cli, tmp_path, "instructblip", tmp_path / "instruct_blip_vicuna7b_trimmed.pth")
    assert manifest["weights"]["layout"] == "lavis-original" and manifest["weights"]["ignored_keys"] == 1
    assert_matches_feeds(out, reference, [_text_feed(2, 9, 5, 4), _text_feed(1, 13, 30, 5)])


def test_perceiver_open_flamingo_checkpoint(cli, tmp_path):
    torch.manual_seed(13)
    resampler = original.PerceiverResampler(dim=48, depth=2, dim_head=64, heads=2, num_latents=8, ff_mult=2).eval()
    _randomize(resampler, 13, std=0.1)
    state = {f"perceiver.{k}": v for k, v in resampler.state_dict().items()}
    state["lang_encoder.transformer.wte.weight"] = torch.randn(10, 16)
    torch.save(state, tmp_path / "checkpoint.pt")
    out, manifest = export(cli, tmp_path, "perceiver", tmp_path / "checkpoint.pt")
    assert manifest["config"] | {"dim": 48, "depth": 2, "heads": 2, "num_latents": 8, "ff_mult": 2} == manifest["config"]
    g = torch.Generator().manual_seed(0)
    feeds = [{"vision_features": torch.randn(b, m, 1, t, 48, generator=g)} for b, m, t in [(1, 1, 256), (2, 3, 7), (3, 2, 31)]]
    assert_matches_feeds(out, lambda vision_features: resampler(vision_features), feeds)


def _gated_block(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    block = original.GatedCrossAttentionBlock(dim=32, dim_visual=24, dim_head=64, heads=2, ff_mult=2).eval()
    _randomize(block, seed, std=0.1)
    with torch.no_grad():  # trained gates are open; zero gates would hide the attention entirely
        block.attn_gate.fill_(0.7)
        block.ff_gate.fill_(-0.4)
    return block


def _gated_feed(batch: int, text: int, media: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    locations = torch.zeros(batch, text, dtype=torch.bool)
    for row in range(batch - 1):  # the last row has no <image> tag at all: its text attends to nothing
        places = torch.randperm(text, generator=g)[: min(media, text)]
        locations[row, places] = True
    return {
        "lang_x": torch.randn(batch, text, 32, generator=g),
        "media": torch.randn(batch, media, 64, 24, generator=g),
        "media_locations": locations,
    }


def test_gated_xattn_picks_the_layer_and_matches_flamingo(cli, tmp_path):
    blocks = {3: _gated_block(14), 7: _gated_block(15)}
    state = {}
    for index, block in blocks.items():
        for k, v in block.state_dict().items():
            state[f"lang_encoder.gated_cross_attn_layers.{index}.{k}"] = v
            state[f"lang_encoder.transformer.blocks.{index}.gated_cross_attn_layer.{k}"] = v  # the same module, second path
    torch.save(state, tmp_path / "checkpoint.pt")
    out, manifest = export(cli, tmp_path, "gated-xattn", tmp_path / "checkpoint.pt", "--layer", "7")
    assert manifest["weights"]["layer"] == 7 and manifest["config"]["dim"] == 32
    feeds = [_gated_feed(1, 9, 1, 1), _gated_feed(2, 5, 3, 2), _gated_feed(3, 40, 2, 3)]
    assert_matches_feeds(out, lambda lang_x, media, media_locations: blocks[7](lang_x, media, media_locations), feeds)
    assert cli("check", out).code == 0  # check reloads layer 7 from the manifest

    first, manifest = export(cli, tmp_path, "gated-xattn", tmp_path / "checkpoint.pt")
    assert manifest["weights"]["layer"] == 3
    assert_matches_feeds(first, lambda lang_x, media, media_locations: blocks[3](lang_x, media, media_locations), feeds[:1])
    assert_one_line(
        cli("onnx", "-c", "gated-xattn", "-w", tmp_path / "checkpoint.pt", "--layer", "5", "-o", tmp_path / "x.onnx"), 1, "no 'gated-xattn' layer 5", "3, 7"
    )


def test_gated_xattn_masks_stay_finite_in_fp16(cli, tmp_path, tiny):
    name = tiny("gated-xattn")
    out = tmp_path / "g.onnx"
    assert cli("onnx", "-c", name, "-p", "tiny", "-o", out).code == 0
    result = cli("quantize", out, "--precision", "fp16", "--io", "fp16")
    assert result.code == 0, result  # the gate ran rows with no media at all: no NaN, no inf


def test_qwen_vl_resampler_original_layout(cli, tmp_path):
    torch.manual_seed(16)
    tail = original.QwenVisualTail(width=40, output_dim=256, n_queries=16).eval()
    _randomize(tail, 16, std=0.1)
    state = {f"transformer.visual.{k}": v for k, v in tail.state_dict().items()}
    state["transformer.visual.conv1.weight"] = torch.randn(40, 3, 14, 14)
    state["transformer.wte.weight"] = torch.randn(10, 256)
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "model.safetensors")
    out, manifest = export(cli, tmp_path, "qwen-vl-resampler", tmp_path / "model.safetensors")
    assert manifest["config"] | {"vision_dim": 40, "embed_dim": 256, "heads": 2, "queries": 16, "tokens": 1024} == manifest["config"]
    # 4x4 position table resized bicubically to the 32x32 input grid, as get_abs_pos does
    assert_matches_at(out, tail, [(1, 1024, 40), (2, 1024, 40), (3, 1024, 40)])


def test_idefics2_transformers_layout_with_padded_patches(cli, tmp_path):
    from transformers import Idefics2Config
    from transformers.models.idefics2.modeling_idefics2 import Idefics2Connector

    torch.manual_seed(17)
    config = Idefics2Config(
        vision_config=dict(hidden_size=24),
        text_config=dict(model_type="mistral", hidden_size=32, intermediate_size=48, num_attention_heads=4, num_key_value_heads=2),
        perceiver_config=dict(hidden_size=32, resampler_n_latents=8, resampler_depth=2, resampler_n_heads=4, resampler_head_dim=96, num_key_value_heads=2),
    )
    config.perceiver_config._attn_implementation = "eager"
    connector = Idefics2Connector(config).eval()
    _randomize(connector, 17, std=0.1)
    save_file({f"model.connector.{k}": v.contiguous() for k, v in connector.state_dict().items()}, tmp_path / "model.safetensors")
    out, manifest = export(cli, tmp_path, "idefics2", tmp_path / "model.safetensors")
    assert manifest["config"] | {"vision_dim": 24, "text_dim": 32, "latents": 8, "depth": 2, "heads": 4, "kv_heads": 2} == manifest["config"]
    g = torch.Generator().manual_seed(0)

    def feed(batch, tokens, real):
        return {
            "image_hidden_states": torch.randn(batch, tokens, 24, generator=g),
            "patch_attention_mask": torch.arange(tokens)[None, :] < torch.tensor(real)[:, None],
        }

    reference = lambda image_hidden_states, patch_attention_mask: connector(image_hidden_states, patch_attention_mask)  # noqa: E731
    assert_matches_feeds(out, reference, [feed(1, 64, [64]), feed(2, 7, [7, 3]), feed(3, 40, [40, 1, 25])])


def test_owl_abstractor_original_layout(cli, tmp_path):
    torch.manual_seed(18)
    owl = original.MplugOwlInputSide(queries=8, hidden_size=32, num_heads=16, intermediate_size=48, layers=2, language_hidden_size=40).eval()
    _randomize(owl, 18, std=0.1)
    state = dict(owl.state_dict()) | {"vision_model.post_layernorm.weight": torch.ones(32)}
    torch.save(state, tmp_path / "pytorch_model.bin")
    out, manifest = export(cli, tmp_path, "owl-abstractor", tmp_path / "pytorch_model.bin")
    assert manifest["config"] | {"hidden": 32, "llm_dim": 40, "layers": 2, "intermediate": 48, "queries": 8} == manifest["config"]
    assert manifest["outputs"][0]["shape"] == ["batch", 9, 40]  # 8 queries + vit_eos
    assert_matches_at(out, owl, [(1, 257, 32), (2, 7, 32), (3, 31, 32)])


@pytest.mark.parametrize("name", ["instructblip", "minigpt4", "perceiver", "gated-xattn", "qwen-vl-resampler", "idefics2", "owl-abstractor"])
def test_listed_with_their_systems(cli, name):
    result = cli("list", "--json")
    import json

    row = next(r for r in json.loads(result.stdout) if r["connector"] == name)
    assert row["systems"] and row["presets"]
