"""Projection, convolutional and token-merging connectors against their originals:
transformers classes where they exist (InternVL, Qwen2-VL, Qwen2.5-VL), else the faithful
re-implementations in original_connectors.py; checkpoints in the layouts users download."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from support.checks import assert_matches_at
from support.cli import export
from support.original_connectors import (
    CogVLMVisionTail,
    DocOwlHReducer,
    HoneybeeCAbstractor,
    MiniGPTv2Proj,
    MobileVLMLDPNetProjector,
    MobileVLMLDPNetV2Projector,
)
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLPatchMerger
from transformers.models.qwen2_vl.modeling_qwen2_vl import PatchMerger


def randomize(module: torch.nn.Module, seed: int, std: float = 0.1) -> torch.nn.Module:
    """Random non-trivial weights everywhere (norm weights around 1) so no term hides."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.normal_(1.0 if name.endswith("weight") and p.dim() == 1 else 0.0, std)
    return module.eval()


def save(tmp_path, state, prefix, name="w.safetensors", extra=None):
    tensors = {f"{prefix}{k}": v.contiguous() for k, v in state.items()} | (extra or {})
    save_file(tensors, tmp_path / name)
    return tmp_path / name


def test_glu_cogvlm(cli, tmp_path):
    tail = randomize(CogVLMVisionTail(hidden_size=64, intermediate_size=96, vision_hidden=40), 0)
    weights = save(tmp_path, tail.state_dict(), "model.vision.", extra={"model.vision.transformer.layers.0.mlp.fc1.weight": torch.randn(8, 40)})
    out, manifest = export(cli, tmp_path, "glu", weights)
    assert manifest["weights"]["ignored_keys"] == 1
    assert_matches_at(out, tail, [(1, 9, 40), (2, 7, 40), (3, 35, 40)])


def test_concat_linear_minigpt_v2(cli, tmp_path):
    proj = randomize(MiniGPTv2Proj(vision_dim=24, llm_dim=40), 1)
    weights = save(tmp_path, proj.state_dict(), "", name="minigptv2.pth.safetensors")
    out, manifest = export(cli, tmp_path, "concat-linear", weights)
    assert manifest["config"]["vision_dim"] == 24
    assert_matches_at(out, proj, [(1, 1024, 24), (2, 4, 24), (3, 36, 24)])


def test_h_reducer_docowl(cli, tmp_path):
    reducer = randomize(DocOwlHReducer(hidden_size=16, language_hidden_size=48), 2)
    weights = save(tmp_path, reducer.state_dict(), "model.vision2text.")
    out, manifest = export(cli, tmp_path, "h-reducer", weights)
    assert manifest["weights"]["ignored_keys"] == 2  # ln_q exists in DocOwl but is unused
    assert manifest["outputs"][0]["shape"] == ["crops", 257, 48]
    assert_matches_at(out, reducer, [(1, 1025, 16), (2, 1025, 16), (3, 1025, 16)])


@pytest.mark.parametrize("vision,hidden", [(32, 32), (24, 32)])  # 24 != 32 exercises the shortcut conv
def test_c_abstractor_honeybee(cli, tmp_path, vision, hidden):
    abstractor = randomize(HoneybeeCAbstractor(vision, hidden, 48, num_input_tokens=256, num_queries=144), 3, std=0.2)
    weights = save(tmp_path, abstractor.state_dict(), "abstractor.")
    out, manifest = export(cli, tmp_path, "c-abstractor", weights)
    assert manifest["config"] | {"hidden": hidden, "llm_dim": 48, "depth": 3} == manifest["config"]
    assert_matches_at(out, abstractor, [(1, 256, vision), (2, 256, vision), (3, 256, vision)])


def test_c_abstractor_old_checkpoint_with_cls_position(cli, tmp_path):
    abstractor = randomize(HoneybeeCAbstractor(16, 16, 24, num_input_tokens=256, num_queries=144, depth=1), 4)
    state = dict(abstractor.state_dict())
    state["pos_emb"] = torch.cat([torch.randn(1, 1, 16), state["pos_emb"]], dim=1)  # 257 rows
    out, _ = export(cli, tmp_path, "c-abstractor", save(tmp_path, state, "abstractor."))
    assert_matches_at(out, abstractor, [(1, 256, 16), (2, 256, 16), (3, 256, 16)])


def test_ldp_v1_mobilevlm(cli, tmp_path):
    ldp = randomize(MobileVLMLDPNetProjector(24, 32), 5)
    weights = save(tmp_path, ldp.state_dict(), "model.mm_projector.")
    out, manifest = export(cli, tmp_path, "ldp", weights)
    assert manifest["config"]["version"] == 1
    assert_matches_at(out, ldp, [(1, 576, 24), (2, 576, 24), (3, 576, 24)])


def test_ldp_v2_mobilevlm(cli, tmp_path):
    ldp = randomize(MobileVLMLDPNetV2Projector(24, 32), 6)
    weights = save(tmp_path, ldp.state_dict(), "model.mm_projector.")
    out, manifest = export(cli, tmp_path, "ldp", weights)  # the version and dims come from the weights
    assert manifest["config"]["version"] == 2
    assert_matches_at(out, ldp, [(1, 576, 24), (2, 576, 24), (3, 576, 24)])


def _internvl_reference(vision_dim, llm_dim, seed):
    from transformers import InternVLConfig
    from transformers.models.internvl.modeling_internvl import InternVLModel, InternVLMultiModalProjector

    config = InternVLConfig(
        vision_config=dict(hidden_size=vision_dim, num_attention_heads=2, intermediate_size=32, num_hidden_layers=1),
        text_config=dict(model_type="qwen2", hidden_size=llm_dim, num_attention_heads=2, num_key_value_heads=1, intermediate_size=32, num_hidden_layers=1),
        downsample_ratio=0.5,
        projector_hidden_act="gelu",
    )
    projector = randomize(InternVLMultiModalProjector(config), seed)

    def reference(features):  # InternVLModel.get_image_features after the vision tower (CLS already dropped)
        b, n, c = features.shape
        side = int(n**0.5)
        grid = InternVLModel.pixel_shuffle(None, features.reshape(b, side, side, -1), scale_factor=0.5)
        return projector(grid.reshape(b, -1, grid.shape[-1]))

    return projector, reference


@pytest.mark.parametrize("layout", ["transformers", "original"])
def test_pixel_shuffle_internvl(cli, tmp_path, layout):
    projector, reference = _internvl_reference(vision_dim=16, llm_dim=40, seed=7)
    sd = projector.state_dict()
    if layout == "transformers":
        weights = save(tmp_path, sd, "model.multi_modal_projector.")
    else:  # InternVL chat checkpoints: mlp1 = Sequential(LayerNorm, Linear, GELU, Linear)
        names = {"layer_norm": "mlp1.0", "linear_1": "mlp1.1", "linear_2": "mlp1.3"}
        weights = save(tmp_path, {names[k.split(".")[0]] + "." + k.split(".")[1]: v for k, v in sd.items()}, "")
    out, manifest = export(cli, tmp_path, "pixel-shuffle", weights)
    assert manifest["weights"]["layout"] == ("transformers" if layout == "transformers" else "internvl-original")
    assert_matches_at(out, reference, [(1, 1024, 16), (2, 1024, 16), (3, 1024, 16)])


@pytest.mark.parametrize("preset,cls", [("qwen2-vl-7b", PatchMerger), ("qwen2.5-vl-7b", Qwen2_5_VLPatchMerger)])
def test_patch_merger_qwen(cli, tmp_path, preset, cls):
    merger = randomize(cls(dim=48, context_dim=16, spatial_merge_size=2), 8)
    weights = save(tmp_path, merger.state_dict(), "model.visual.merger.")
    out, manifest = export(cli, tmp_path, "patch-merger", weights)  # the norm and dims come from the weights
    assert manifest["config"]["norm"] == ("layernorm" if cls is PatchMerger else "rmsnorm")
    assert_matches_at(out, merger, [(1024, 16), (4, 16), (4 * 37, 16)])
