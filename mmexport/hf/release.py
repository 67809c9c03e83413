"""Model folders shaped like releases, with random weights and only the vision side's tensors
(mmexport never reads the LLM's): what export, the gates, variants and engines cost at release
size, measured without downloading a model. config.json has the released one's shape; the
processor has the released settings; tensors are bf16 in shards with an index, as released."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

# LLaVA-1.5's tower at release size: CLIP ViT-L/14 at 336 px
CLIP_L_336 = dict(
    model_type="clip_vision_model", hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336, patch_size=14
)


def llava15_vision(folder: Path) -> None:
    """LLaVA-1.5-7B's vision side at release size (CLIP ViT-L/14-336, the 1024 -> 4096 MLP) with
    random weights, in a model folder whose config.json is the released one's shape. Only the
    tower's and the projector's tensors are written: mmexport never reads the LLM's."""

    from transformers import CLIPImageProcessor, CLIPVisionModel, LlavaConfig

    config = LlavaConfig(
        vision_config=CLIP_L_336 | {"projection_dim": 768},
        text_config=dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
    )
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}).save_pretrained(folder)
    torch.manual_seed(0)
    tower = {f"model.vision_tower.{k}": v.contiguous().to(torch.bfloat16) for k, v in CLIPVisionModel(config.vision_config).state_dict().items()}
    projector = {
        "model.multi_modal_projector.linear_1.weight": torch.randn(4096, 1024) * 0.02,
        "model.multi_modal_projector.linear_1.bias": torch.randn(4096) * 0.02,
        "model.multi_modal_projector.linear_2.weight": torch.randn(4096, 4096) * 0.02,
        "model.multi_modal_projector.linear_2.bias": torch.randn(4096) * 0.02,
    }
    write_shards(folder, [tower, {k: v.to(torch.bfloat16) for k, v in projector.items()}])


def qwen25_vision(folder: Path, depth: int = 32) -> None:
    """Qwen2.5-VL-7B's vision side at release size (32 blocks, width 1280, 16 heads, window 112,
    full attention in blocks 7/15/23/31, merger to 3584: ~670M parameters) with random weights,
    in bf16, in a folder whose config.json is the released one's shape, with the released
    processor settings. Only the tower's tensors are written: mmexport never reads the LLM's.
    A smaller `depth` keeps every eighth block and the last in full attention (quicker profiles)."""

    from transformers import Qwen2_5_VLConfig, Qwen2VLImageProcessor
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    full = sorted({i for i in (7, 15, 23, 31) if i < depth} | {depth - 1})
    vision: dict[str, Any] = dict(depth=depth, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, window_size=112)
    vision |= dict(fullatt_block_indexes=full, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, hidden_act="silu")
    text = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, vocab_size=152064)
    config = Qwen2_5_VLConfig(vision_config=vision, text_config=text | {"rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}})
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    Qwen2VLImageProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16384}).save_pretrained(folder)  # as released
    torch.manual_seed(0)
    tower = Qwen2_5_VisionTransformerPretrainedModel(config.vision_config).to(torch.bfloat16)
    state = {f"model.visual.{k}": v.contiguous() for k, v in tower.state_dict().items()}
    del tower
    keys = sorted(state)
    write_shards(folder, [{k: state[k] for k in keys[i::2]} for i in range(2)])


def vision_release(folder: Path, config: Any, processor: Any, parts: tuple[str, ...]) -> None:
    """A folder shaped as released for any declared type: config.json as given, the processor, and
    only the vision parts' tensors (transformers' own initialisation, bf16, two shards). The model
    is built on the meta device; only `parts` get memory."""
    from .model import materialize, module_path, skeleton

    model = skeleton(config)
    paths = [module_path(model, part) for part in parts]
    materialize(model, paths)
    torch.manual_seed(0)
    with torch.no_grad():
        for path in paths:
            for name, parameter in model.get_submodule(path).named_parameters():
                scale = 0.02 if parameter.dim() > 1 else 0.0
                parameter.copy_(torch.randn_like(parameter) * scale + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    processor.save_pretrained(folder)
    state = {f"{path}.{k}": v.to(torch.bfloat16).contiguous() for path in paths for k, v in model.get_submodule(path).state_dict().items()}
    keys = sorted(state)
    write_shards(folder, [{k: state[k] for k in keys[i::2]} for i in range(2)])


def qwen35_vision(folder: Path) -> None:
    """Qwen3.5's vision side from transformers' default Qwen3_5VisionConfig (27 blocks, width 1152,
    16 heads, patch 16, a 48x48 position table, merger to 3584), with the Qwen3-VL processor settings."""
    from transformers import Qwen2VLImageProcessor, Qwen3_5Config

    processor = Qwen2VLImageProcessor(patch_size=16, size={"shortest_edge": 64 * 64, "longest_edge": 32 * 32 * 16384})
    vision_release(folder, Qwen3_5Config(), processor, ("visual",))


def gemma4_vision(folder: Path) -> None:
    """Gemma 4's vision tower from transformers' default Gemma4VisionConfig (16 layers, width 768,
    12 heads, patch 16, 3x3 pooling) and its embedder into the default text width, 280 soft tokens."""
    from transformers import Gemma4Config, Gemma4ImageProcessor, Gemma4VisionConfig

    config = Gemma4Config(vision_config=Gemma4VisionConfig().to_dict(), audio_config=None)
    vision_release(folder, config, Gemma4ImageProcessor(max_soft_tokens=280), ("vision_tower", "embed_vision"))


RELEASES = {"qwen2_5_vl": qwen25_vision, "qwen3_5": qwen35_vision, "gemma4": gemma4_vision, "llava": llava15_vision}


def write_shards(folder: Path, shards: list[dict[str, torch.Tensor]]) -> None:
    """Safetensors shards and their index, named as releases name them."""
    from safetensors.torch import save_file

    weight_map: dict[str, str] = {}
    for i, tensors in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(tensors, folder / name)
        weight_map |= {key: name for key in tensors}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
