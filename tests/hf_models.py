"""Tiny random Hugging Face VLMs of every family mmexport detects, built with transformers and
saved with save_pretrained (sharded, as released folders are), with the inputs each one takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

IMAGE_TOKEN = 100
LLAMA = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
CLIP = dict(model_type="clip_vision_model", hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2, image_size=28, patch_size=7)
SIGLIP = dict(model_type="siglip_vision_model", hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
VIT = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
OPT = dict(model_type="opt", hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4, vocab_size=128, word_embed_proj_dim=32)
PINPOINTS = [[28, 28], [28, 56], [56, 28]]
QWEN_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=160)
QWEN_TEXT |= {"rope_scaling": {"type": "mrope", "mrope_section": [2, 1, 1]}}
QWEN_TOKENS = dict(image_token_id=151, video_token_id=152, vision_start_token_id=150)


def _config(model_type: str) -> Any:
    import transformers as t

    qformer = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, encoder_hidden_size=24)
    return {
        "llava": lambda: t.LlavaConfig(vision_config=CLIP, text_config=LLAMA, image_token_id=IMAGE_TOKEN, image_seq_length=16),
        "llava_next": lambda: t.LlavaNextConfig(vision_config=CLIP, text_config=LLAMA, image_token_id=IMAGE_TOKEN, image_grid_pinpoints=PINPOINTS),
        "llava_onevision": lambda: t.LlavaOnevisionConfig(
            vision_config=SIGLIP, text_config=LLAMA | {"model_type": "qwen2"}, image_token_id=IMAGE_TOKEN, image_grid_pinpoints=PINPOINTS
        ),
        "paligemma": lambda: t.PaliGemmaConfig(
            vision_config=SIGLIP | {"projection_dim": 32},
            text_config=dict(
                model_type="gemma",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=1,
                head_dim=8,
                vocab_size=128,
                num_image_tokens=16,
            ),
            image_token_id=IMAGE_TOKEN,
            projection_dim=32,
        ),
        "blip-2": lambda: t.Blip2Config(vision_config=VIT, qformer_config=qformer, text_config=OPT, num_query_tokens=8, image_token_index=IMAGE_TOKEN),
        "instructblip": lambda: t.InstructBlipConfig(
            vision_config=VIT,
            qformer_config=qformer | dict(vocab_size=64, max_position_embeddings=32),
            text_config=OPT,
            num_query_tokens=8,
            image_token_index=IMAGE_TOKEN,
        ),
        "idefics2": lambda: t.Idefics2Config(
            vision_config=VIT,
            perceiver_config=dict(hidden_size=32, resampler_n_latents=8, resampler_depth=2, resampler_n_heads=4, resampler_head_dim=8, num_key_value_heads=2),
            text_config=LLAMA | {"model_type": "mistral"},
            image_token_id=IMAGE_TOKEN,
        ),
        "qwen2_vl": lambda: t.Qwen2VLConfig(
            vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2),
            text_config=QWEN_TEXT,
            **QWEN_TOKENS,
        ),
        "qwen2_5_vl": lambda: t.Qwen2_5_VLConfig(
            vision_config=dict(
                depth=2,
                hidden_size=32,
                out_hidden_size=32,
                intermediate_size=64,
                num_heads=2,
                patch_size=14,
                spatial_merge_size=2,
                window_size=56,
                fullatt_block_indexes=[1],
            ),
            text_config=QWEN_TEXT,
            **QWEN_TOKENS,
        ),
        "internvl": lambda: t.InternVLConfig(
            vision_config=VIT | dict(image_size=[28, 28], patch_size=[7, 7]), text_config=LLAMA | {"model_type": "qwen2"}, image_token_id=IMAGE_TOKEN
        ),
    }[model_type]()


MODEL_TYPES = ("llava", "llava_next", "llava_onevision", "paligemma", "blip-2", "instructblip", "idefics2", "qwen2_vl", "qwen2_5_vl", "internvl")


def build(model_type: str, seed: int = 0):
    """A tiny random model with small non-zero weights everywhere (biases included)."""
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    config = _config(model_type)
    model = AutoModelForImageTextToText.from_config(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    return model


def save_model(model_type: str, folder: Path, seed: int = 0):
    model = build(model_type, seed)
    model.save_pretrained(folder, max_shard_size="100KB")  # sharded, with an index, as released
    return model


def image_inputs(model_type: str, images: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    """What the model's image processor would return for `images` images."""
    g = torch.Generator().manual_seed(seed)
    if model_type in ("qwen2_vl", "qwen2_5_vl"):  # patches flattened; a 56x56 image is a 4x4 grid of 14 px
        return {"pixel_values": torch.randn(16 * images, 3 * 2 * 14 * 14, generator=g), "image_grid_thw": torch.tensor([[1, 4, 4]] * images)}
    if model_type in ("llava_next", "llava_onevision"):  # 28x28 images: the base tile and one grid tile
        return {"pixel_values": torch.randn(images, 2, 3, 28, 28, generator=g), "image_sizes": torch.tensor([[28, 28]] * images)}
    if model_type == "idefics2":  # one image per sample; the second padded to 14x28 (its lower half masked)
        mask = torch.ones(images, 1, 28, 28, dtype=torch.bool)
        mask[-1, 0, 14:] = False
        pixels = torch.randn(images, 1, 3, 28, 28, generator=g) * mask[:, :, None]
        return {"pixel_values": pixels, "pixel_attention_mask": mask}
    if model_type == "instructblip":  # instructions of different lengths, right-padded
        ids = torch.randint(1, 64, (images, 5), generator=g)
        mask = torch.ones(images, 5, dtype=torch.long)
        mask[-1, 3:] = 0
        return {"pixel_values": torch.randn(images, 3, 28, 28, generator=g), "qformer_input_ids": ids, "qformer_attention_mask": mask}
    return {"pixel_values": torch.randn(images, 3, 28, 28, generator=g)}


def save_processor(model_type: str, folder: Path) -> None:
    """The image processor a released folder carries, at the tiny models' 28 px."""
    import transformers as t

    size = {"height": 28, "width": 28}
    processor = {
        "llava": lambda: t.CLIPImageProcessor(size={"shortest_edge": 28}, crop_size=size),
        "paligemma": lambda: t.SiglipImageProcessor(size=size),
        "blip-2": lambda: t.BlipImageProcessor(size=size),
        "instructblip": lambda: t.BlipImageProcessor(size=size),
    }[model_type]()
    processor.save_pretrained(folder)


def write_photos(folder: Path, generated: int = 6) -> list[Path]:
    """Real photos that scikit-image ships (no download), and generated images, as PNG files."""
    import numpy as np
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "camera", "coins"]
    paths = []
    for name in names:
        pixels = getattr(skimage.data, name)()
        image = Image.fromarray(pixels).convert("RGB")
        paths.append(folder / f"{name}.png")
        image.save(paths[-1])
    rng = np.random.default_rng(0)
    for i in range(generated):  # gradients with noise, in colours the photos lack
        y, x = np.mgrid[0:64, 0:64]
        base = np.stack([(x * (i + 1)) % 256, (y * (7 - i)) % 256, (x + y) * 2 % 256], axis=-1)
        pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"generated-{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


# LLaVA-1.5's tower at release size: CLIP ViT-L/14 at 336 px
CLIP_L_336 = dict(
    model_type="clip_vision_model", hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336, patch_size=14
)


def save_release_llava_vision(folder: Path) -> None:
    """LLaVA-1.5-7B's vision side at release size (CLIP ViT-L/14-336, the 1024 -> 4096 MLP) with
    random weights, in a model folder whose config.json is the released one's shape. Only the
    tower's and the projector's tensors are written: mmexport never reads the LLM's."""
    import json

    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionModel, LlavaConfig

    config = LlavaConfig(
        vision_config=CLIP_L_336 | {"projection_dim": 768},
        text_config=dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
    )
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}).save_pretrained(folder)
    torch.manual_seed(0)
    tower = {f"model.vision_tower.{k}": v.contiguous() for k, v in CLIPVisionModel(config.vision_config).state_dict().items()}
    projector = {
        "model.multi_modal_projector.linear_1.weight": torch.randn(4096, 1024) * 0.02,
        "model.multi_modal_projector.linear_1.bias": torch.randn(4096) * 0.02,
        "model.multi_modal_projector.linear_2.weight": torch.randn(4096, 4096) * 0.02,
        "model.multi_modal_projector.linear_2.bias": torch.randn(4096) * 0.02,
    }
    shards = {"model-00001-of-00002.safetensors": tower, "model-00002-of-00002.safetensors": projector}
    for name, tensors in shards.items():
        save_file(tensors, folder / name)
    weight_map = {key: name for name, tensors in shards.items() for key in tensors}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
