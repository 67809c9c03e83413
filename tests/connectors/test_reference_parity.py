"""The exported ONNX against the released implementations (transformers classes, original
key layouts): this, not parity with our own modules, proves a connector is right."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from support.checks import assert_matches_at
from support.cli import export
from support.references import blip2, blip2_connector_output, llava_projector, to_lavis_keys
from transformers import Blip2QFormerConfig, Blip2QFormerModel

SHAPES = [(1, 9), (2, 7), (3, 31)]  # batch 1 included, odd token counts


def assert_matches(onnx_path, reference, feature_dim, shapes=SHAPES):
    assert_matches_at(onnx_path, reference, [(b, t, feature_dim) for b, t in shapes])


def test_mlp_transformers_layout_with_foreign_keys(cli, tmp_path):
    projector = llava_projector(vision_dim=48, llm_dim=64)
    state = {f"model.multi_modal_projector.{k}": v for k, v in projector.state_dict().items()}
    state["model.language_model.embed_tokens.weight"] = torch.randn(10, 64)  # a full-model checkpoint
    state["model.vision_tower.vision_model.post_layernorm.weight"] = torch.randn(48)
    save_file(state, tmp_path / "model.safetensors")
    out, manifest = export(cli, tmp_path, "mlp", tmp_path / "model.safetensors")
    assert manifest["weights"]["layout"] == "transformers"
    assert manifest["weights"]["ignored_keys"] == 2
    assert manifest["config"]["vision_dim"] == 48 and manifest["config"]["llm_dim"] == 64
    assert_matches(out, projector, 48)


def test_mlp_llava_original_bin(cli, tmp_path):
    projector = llava_projector(vision_dim=32, llm_dim=40, seed=1)
    sd = projector.state_dict()
    # LLaVA's stage-1 mm_projector.bin: nn.Sequential(Linear, GELU, Linear) under model.mm_projector
    state = {
        "model.mm_projector.0.weight": sd["linear_1.weight"].half(),
        "model.mm_projector.0.bias": sd["linear_1.bias"].half(),
        "model.mm_projector.2.weight": sd["linear_2.weight"].half(),
        "model.mm_projector.2.bias": sd["linear_2.bias"].half(),
    }
    torch.save(state, tmp_path / "mm_projector.bin")
    out, manifest = export(cli, tmp_path, "mlp", tmp_path / "mm_projector.bin")
    assert manifest["weights"]["layout"] == "llava-original"
    projector = projector.half().float()  # the reference sees the same fp16-stored weights
    assert_matches(out, projector, 32)


@pytest.mark.slow
def test_mlp_release_dims_llava15_7b(cli, tmp_path):
    projector = llava_projector(vision_dim=1024, llm_dim=4096, seed=2)
    save_file({f"multi_modal_projector.{k}": v for k, v in projector.state_dict().items()}, tmp_path / "proj.safetensors")
    out, manifest = export(cli, tmp_path, "mlp", tmp_path / "proj.safetensors")
    assert manifest["preset"] == "llava-1.5-7b" and manifest["warnings"] == []
    assert_matches(out, projector, 1024, shapes=[(1, 576), (2, 33)])


def test_linear_llava_v1_original_layout(cli, tmp_path):
    torch.manual_seed(3)
    reference = torch.nn.Linear(40, 56)  # LLaVA v1: nn.Linear(mm_hidden_size, hidden_size)
    torch.save({"model.mm_projector.weight": reference.weight.data, "model.mm_projector.bias": reference.bias.data}, tmp_path / "w.pt")
    out, manifest = export(cli, tmp_path, "linear", tmp_path / "w.pt")
    assert manifest["weights"]["layout"] == "llava-original"
    assert_matches(out, reference, 40)


def test_qformer_transformers_full_blip2_checkpoint(cli, tmp_path):
    model = blip2()
    save_file({k: v.clone() for k, v in model.state_dict().items()}, tmp_path / "blip2.safetensors")
    out, manifest = export(cli, tmp_path, "qformer", tmp_path / "blip2.safetensors")
    assert manifest["weights"]["layout"] == "transformers"
    assert manifest["weights"]["ignored_keys"] > 0  # vision tower and OPT keys
    assert manifest["config"] | {"layers": 2, "num_queries": 8, "hidden": 48, "llm_dim": 24, "vision_dim": 40} == manifest["config"]
    assert_matches(out, lambda x: blip2_connector_output(model, x), 40)


def test_qformer_sharded_hf_folder(cli, tmp_path):
    model = blip2(seed=4)
    model.save_pretrained(tmp_path / "blip2", max_shard_size="100KB")  # index JSON + shards
    assert (tmp_path / "blip2" / "model.safetensors.index.json").exists()
    out, _ = export(cli, tmp_path, "qformer", tmp_path / "blip2")
    assert_matches(out, lambda x: blip2_connector_output(model, x), 40)


def test_qformer_lavis_original_checkpoint(cli, tmp_path):
    model = blip2(seed=5, layers=4)
    # LAVIS .pth: {"model": state_dict}, BERT names, opt_proj, plus the text FFN the queries never use
    state = to_lavis_keys(model.state_dict())
    state["Qformer.bert.encoder.layer.0.intermediate.dense.weight"] = torch.randn(64, 48)
    torch.save({"model": state, "epoch": 3}, tmp_path / "blip2_pretrained.pth")
    out, manifest = export(cli, tmp_path, "qformer", tmp_path / "blip2_pretrained.pth")
    assert manifest["weights"]["layout"] == "lavis-original"
    assert manifest["config"]["layers"] == 4
    assert_matches(out, lambda x: blip2_connector_output(model, x), 40)


@pytest.mark.slow
def test_qformer_release_dims_blip2_opt_27b(cli, tmp_path):
    torch.manual_seed(6)
    qformer = Blip2QFormerModel(Blip2QFormerConfig(_attn_implementation="eager")).eval()  # 768 hidden, 12 layers, 1408 vision
    query_tokens = torch.randn(1, 32, 768) * 0.5
    projection = torch.nn.Linear(768, 2560)
    state = {f"qformer.{k}": v for k, v in qformer.state_dict().items()}
    state |= {"query_tokens": query_tokens} | {f"language_projection.{k}": v for k, v in projection.state_dict().items()}
    save_file(state, tmp_path / "blip2-qformer.safetensors")
    out, manifest = export(cli, tmp_path, "qformer", tmp_path / "blip2-qformer.safetensors")
    assert manifest["preset"] == "blip2-opt-2.7b" and manifest["warnings"] == []

    def reference(x):
        hidden = qformer(query_embeds=query_tokens.expand(x.shape[0], -1, -1), encoder_hidden_states=x).last_hidden_state
        return projection(hidden)

    assert_matches(out, reference, 1408, shapes=[(1, 257), (2, 31)])


def test_linear_minigpt4_llama_proj(cli, tmp_path):
    torch.manual_seed(7)
    reference = torch.nn.Linear(48, 64)  # MiniGPT-4: llama_proj on the 32 Q-Former outputs
    torch.save({"model": {"llama_proj.weight": reference.weight.data, "llama_proj.bias": reference.bias.data}}, tmp_path / "prerained_minigpt4.pth")
    out, manifest = export(cli, tmp_path, "linear", tmp_path / "prerained_minigpt4.pth")  # dims from the weights (a --preset must match them)
    assert manifest["weights"]["layout"] == "minigpt4-original"
    assert_matches(out, reference, 48, shapes=[(1, 32), (2, 32), (3, 5)])
