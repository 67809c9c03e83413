"""Tiny random Hugging Face VLMs of every family mmexport reads, built with transformers, saved in
bf16 with save_pretrained (sharded, as released folders are) together with their image processor,
and reloaded in fp32 as a user would; the processor's outputs for real photos of different sizes;
prompts with the image tokens each model wants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
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
COHERE = dict(
    model_type="cohere2", vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8
)
COHERE |= dict(sliding_window=16, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def _qwen(t: Any, model_type: str) -> Any:
    if model_type == "qwen2_vl":
        vision = dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2)
        return t.Qwen2VLConfig(vision_config=vision, text_config=QWEN_TEXT, **QWEN_TOKENS)
    if model_type == "qwen2_5_vl":  # window 56 px: 2x2 merged tokens; block 1 attends over the whole image
        vision = dict(depth=3, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2)
        return t.Qwen2_5_VLConfig(vision_config=vision | dict(window_size=56, fullatt_block_indexes=[1]), text_config=QWEN_TEXT, **QWEN_TOKENS)
    if model_type in ("qwen3_vl", "qwen3_vl_moe"):
        vision = dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=48, num_position_embeddings=64)
        vision |= dict(deepstack_visual_indexes=[0, 1], patch_size=16, spatial_merge_size=2)
        text = dict(vocab_size=160, hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=12)
        text |= {"rope_parameters": {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 2, 2], "mrope_interleaved": True}}
        if model_type == "qwen3_vl_moe":  # the same vision side before a mixture-of-experts LLM
            text |= dict(num_experts=2, num_experts_per_tok=1, moe_intermediate_size=32, decoder_sparse_step=1)
            return t.Qwen3VLMoeConfig(vision_config=vision, text_config=text, **QWEN_TOKENS, vision_end_token_id=153)
        return t.Qwen3VLConfig(vision_config=vision, text_config=text, **QWEN_TOKENS, vision_end_token_id=153)
    vision = dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=48, out_hidden_size=48, patch_size=14, spatial_merge_size=2, image_size=56)
    text = dict(vocab_size=160, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    text |= {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 2]}}
    tokens = dict(image_token_id=151, video_token_id=152, image_start_token_id=150, image_end_token_id=153, video_start_token_id=154, video_end_token_id=155)
    return t.Glm4vConfig(vision_config=vision, text_config=text, **tokens)


def _config(model_type: str) -> Any:
    import transformers as t

    qformer = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, encoder_hidden_size=24)
    gemma_text = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    gemma3_text = gemma_text | dict(model_type="gemma3_text", query_pre_attn_scalar=16, sliding_window=8, layer_types=["sliding_attention", "full_attention"])
    llama4_vision = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    llama4_vision |= dict(pixel_shuffle_ratio=0.5, projector_input_dim=48, projector_output_dim=48, vision_output_dim=48)
    llama4_text = dict(vocab_size=128, hidden_size=32, intermediate_size=32, intermediate_size_mlp=64, num_hidden_layers=2, num_attention_heads=4)
    llama4_text |= dict(num_key_value_heads=2, head_dim=8, num_local_experts=2, num_experts_per_tok=1, interleave_moe_layer_step=2, attention_chunk_size=64)
    mllama_vision = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_global_layers=1, attention_heads=2, image_size=28, patch_size=7)
    mllama_vision |= dict(max_num_tiles=2, supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]], intermediate_layers_indices=[0, 2], vision_output_dim=72)
    mllama_text = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
    pixtral = dict(model_type="pixtral", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=4, image_size=64)
    configs = {
        "llava": lambda: t.LlavaConfig(vision_config=CLIP, text_config=LLAMA, image_token_id=IMAGE_TOKEN, image_seq_length=16),
        "llava_layers": lambda: t.LlavaConfig(vision_config=CLIP, text_config=LLAMA, image_token_id=IMAGE_TOKEN, vision_feature_layer=[-2, -1, 1]),
        "llava_next": lambda: t.LlavaNextConfig(vision_config=CLIP, text_config=LLAMA, image_token_id=IMAGE_TOKEN, image_grid_pinpoints=PINPOINTS),
        "llava_onevision": lambda: t.LlavaOnevisionConfig(
            vision_config=SIGLIP, text_config=LLAMA | {"model_type": "qwen2"}, image_token_id=IMAGE_TOKEN, image_grid_pinpoints=PINPOINTS
        ),
        "vipllava": lambda: t.VipLlavaConfig(vision_config=CLIP, text_config=LLAMA, image_token_index=IMAGE_TOKEN, vision_feature_layer=[-2, -1, 0, 2]),
        "paligemma": lambda: t.PaliGemmaConfig(
            vision_config=SIGLIP | {"projection_dim": 32},
            text_config=dict(gemma_text, model_type="gemma", num_image_tokens=16),
            image_token_id=IMAGE_TOKEN,
            projection_dim=32,
        ),
        "gemma3": lambda: t.Gemma3Config(
            text_config=gemma3_text,
            vision_config=SIGLIP | {"vision_use_head": False},
            mm_tokens_per_image=4,
            boi_token_index=101,
            eoi_token_index=102,
            image_token_index=IMAGE_TOKEN,
        ),
        "shieldgemma2": lambda: t.ShieldGemma2Config(
            text_config=gemma3_text,
            vision_config=SIGLIP | {"vision_use_head": False},
            mm_tokens_per_image=4,
            image_token_index=IMAGE_TOKEN,
            boi_token_index=101,
            eoi_token_index=102,
            yes_token_index=7,
            no_token_index=8,
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
        "idefics3": lambda: t.Idefics3Config(vision_config=VIT, text_config=LLAMA, image_token_id=IMAGE_TOKEN, scale_factor=2),
        "smolvlm": lambda: t.SmolVLMConfig(vision_config=VIT, text_config=LLAMA, image_token_id=IMAGE_TOKEN, scale_factor=2),
        "internvl": lambda: t.InternVLConfig(
            vision_config=VIT | dict(image_size=[28, 28], patch_size=[7, 7]), text_config=LLAMA | {"model_type": "qwen2"}, image_token_id=IMAGE_TOKEN
        ),
        "aya_vision": lambda: t.AyaVisionConfig(
            vision_config=SIGLIP | {"vision_use_head": False},
            text_config=COHERE,
            downsample_factor=2,
            alignment_intermediate_size=48,
            image_token_index=IMAGE_TOKEN,
            vision_feature_select_strategy="full",
        ),
        "cohere2_vision": lambda: t.Cohere2VisionConfig(
            vision_config=SIGLIP, text_config=COHERE, downsample_factor=2, alignment_intermediate_size=48, image_token_id=IMAGE_TOKEN
        ),
        "llama4": lambda: t.Llama4Config(
            vision_config=llama4_vision, text_config=llama4_text, image_token_index=IMAGE_TOKEN, boi_token_index=101, eoi_token_index=102
        ),
        "mllama": lambda: t.MllamaConfig(vision_config=mllama_vision, text_config=mllama_text | {"cross_attention_layers": [1]}, image_token_index=127),
        "mistral3": lambda: t.Mistral3Config(
            vision_config=pixtral,
            text_config=LLAMA | {"model_type": "mistral", "head_dim": 8, "rms_norm_eps": 1e-5},
            image_token_index=IMAGE_TOKEN,
            spatial_merge_size=2,
            projector_hidden_act="gelu",
        ),
    }
    if model_type in configs:
        return configs[model_type]()
    return _qwen(t, model_type)


NATIVE = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "glm4v", "mistral3")
MODEL_TYPES = (
    "llava",
    "llava_next",
    "llava_onevision",
    "vipllava",
    "paligemma",
    "gemma3",
    "shieldgemma2",
    "blip-2",
    "instructblip",
    "idefics2",
    "idefics3",
    "smolvlm",
    "internvl",
    "aya_vision",
    "cohere2_vision",
    "llama4",
    "mllama",
    *NATIVE,
)


def _model_class(model_type: str):
    import transformers as t

    if model_type == "shieldgemma2":  # an image classifier around Gemma 3
        return t.ShieldGemma2ForImageClassification
    return lambda config: t.AutoModelForImageTextToText.from_config(config)


def build(model_type: str, seed: int = 0, config: Any = None):
    """A tiny random model with small non-zero weights everywhere (biases, gates and Gemma 3's
    zero-initialised projection included, so the image matters)."""
    torch.manual_seed(seed)
    model = _model_class(model_type)(config or _config(model_type)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
        for name, parameter in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                parameter.fill_(0.5)  # mllama's cross-attention gates start at 0: the image would not matter
    return model


def save_model(model_type: str, folder: Path, seed: int = 0, config: Any = None):
    """The folder a release looks like (bf16, sharded, with its processor); returns the model a
    user gets from it: from_pretrained in fp32."""
    import warnings

    import transformers as t
    from transformers import AutoModelForImageTextToText

    with warnings.catch_warnings():  # Llama 4's complex rotary buffer is not saved: casting it loses nothing
        warnings.simplefilter("ignore", UserWarning)
        build(model_type, seed, config).to(torch.bfloat16).save_pretrained(folder, max_shard_size="100KB")
    save_processor(model_type, folder)
    loader = t.ShieldGemma2ForImageClassification if model_type == "shieldgemma2" else AutoModelForImageTextToText
    return loader.from_pretrained(folder, dtype=torch.float32).eval()


def processor(model_type: str) -> Any:
    """The image processor its releases ship, at the tiny models' sizes (None where it needs torchvision)."""
    import transformers as t

    size = {"height": 28, "width": 28}
    qwen = {"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 48}
    made = {
        "llava": lambda: t.CLIPImageProcessor(size={"shortest_edge": 28}, crop_size=size),
        "vipllava": lambda: t.CLIPImageProcessor(size={"shortest_edge": 28}, crop_size=size),
        "llava_layers": lambda: t.CLIPImageProcessor(size={"shortest_edge": 28}, crop_size=size),
        "llava_next": lambda: t.LlavaNextImageProcessor(size={"shortest_edge": 28}, crop_size=size, image_grid_pinpoints=PINPOINTS),
        "paligemma": lambda: t.SiglipImageProcessor(size=size),
        "gemma3": lambda: t.Gemma3ImageProcessor(size=size),
        "shieldgemma2": lambda: t.Gemma3ImageProcessor(size=size),
        "blip-2": lambda: t.BlipImageProcessor(size=size),
        "instructblip": lambda: t.BlipImageProcessor(size=size),
        "idefics2": lambda: t.Idefics2ImageProcessor(size={"shortest_edge": 14, "longest_edge": 28}, do_image_splitting=True),
        "idefics3": lambda: t.Idefics3ImageProcessor(size={"longest_edge": 56}, max_image_size={"longest_edge": 28}),
        "smolvlm": lambda: t.SmolVLMImageProcessor(size={"longest_edge": 56}, max_image_size={"longest_edge": 28}),
        "internvl": lambda: t.GotOcr2ImageProcessor(size=size, crop_to_patches=True, max_patches=3),
        "aya_vision": lambda: t.GotOcr2ImageProcessor(size=size, crop_to_patches=True, max_patches=3),
        "mllama": lambda: t.MllamaImageProcessor(size=size, max_image_tiles=2),
        "qwen2_vl": lambda: t.Qwen2VLImageProcessor(size=qwen),
        "qwen2_5_vl": lambda: t.Qwen2VLImageProcessor(size=qwen),
        "qwen3_vl": lambda: t.Qwen2VLImageProcessor(patch_size=16, size={"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 48}),
        "glm4v": lambda: t.Glm4vImageProcessor(size=qwen),
        "mistral3": lambda: t.PixtralImageProcessor(size={"longest_edge": 64}, patch_size=8),
    }.get(model_type.replace("llava_onevision", "llava_next").replace("qwen3_vl_moe", "qwen3_vl"))  # the same processors
    return made() if made else None


def save_processor(model_type: str, folder: Path) -> None:
    made = processor(model_type)
    if made is not None:
        made.save_pretrained(folder)


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins")
SIZES = ((60, 40), (30, 90), (84, 56), (48, 48))  # (height, width): different grids, crops and tiles


def photos(count: int, seed: int = 0) -> list[Any]:
    """Real photos (scikit-image ships them), resized to small sizes of different aspect ratios."""
    import skimage.data
    from PIL import Image

    images = []
    for i in range(count):
        name = PHOTOS[(seed + i) % len(PHOTOS)]
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        height, width = SIZES[(seed + i) % len(SIZES)]
        images.append(image.resize((width, height)))
    return images


def image_inputs(model_type: str, images: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    """What the model's processor returns for `images` photos; where that processor needs
    torchvision, tensors in its layout. Idefics-style processors get one sample per image
    (padding crops appear where samples differ)."""
    made = processor(model_type)
    pictures = photos(images, seed)
    if made is None:
        g = torch.Generator().manual_seed(seed)
        size = {"cohere2_vision": 28, "llama4": 28}[model_type]
        return {"pixel_values": torch.randn(images * 2, 3, size, size, generator=g)}  # two tiles per image
    if model_type in ("idefics2", "idefics3", "smolvlm"):
        out = made(images=[[p] for p in pictures], return_tensors="pt")
    elif model_type == "mllama":
        out = made(images=[pictures], return_tensors="pt")
    else:
        out = made(images=pictures, return_tensors="pt")
    keep = {"pixel_values", "image_grid_thw", "image_sizes", "pixel_attention_mask", "aspect_ratio_ids", "aspect_ratio_mask"}
    inputs = {k: v for k, v in out.items() if k in keep and isinstance(v, torch.Tensor)}
    if model_type == "instructblip":  # instructions of different lengths, right-padded
        ids = torch.randint(1, 64, (images, 5), generator=torch.Generator().manual_seed(seed))
        mask = torch.ones(images, 5, dtype=torch.long)
        mask[-1, 3:] = 0
        inputs |= {"qformer_input_ids": ids, "qformer_attention_mask": mask}
    return inputs


def image_features(model, inputs: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """transformers' own answer: the image features the LLM receives (one tensor per item of its
    pooler_output, or the tensor's rows), and Qwen3-VL's deepstack features."""
    owner = model.model if hasattr(model, "model") and hasattr(model.model, "get_image_features") else model
    with torch.no_grad():
        if model.config.model_type == "mllama":
            vision = model.model.vision_model(**inputs).last_hidden_state
            states = model.model.multi_modal_projector(vision).reshape(-1, vision.shape[-2], model.config.text_config.hidden_size)
            return [states], []
        out = owner.get_image_features(**inputs, return_dict=True)
        if model.config.model_type == "llama4":
            return [owner.multi_modal_projector(out.last_hidden_state)], []
    pooled = out.pooler_output
    items = list(pooled) if isinstance(pooled, (list, tuple)) else [pooled]
    deepstack = [torch.cat(list(level)) for level in (getattr(out, "deepstack_features", None) or [])]
    return items, deepstack


def prompt(model_type: str, model, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """input_ids (and what each family's forward needs beside them) for one prompt holding every
    image of `inputs`, or one prompt per sample where the processor batches samples."""
    config = model.config
    items, _ = image_features(model, inputs)
    text = torch.randint(1, 90, (1, 5), generator=torch.Generator().manual_seed(3))[0]
    if model_type == "mllama":
        image = torch.tensor([config.image_token_index])
        ids = torch.cat([image, text]).repeat(inputs["pixel_values"].shape[0], 1)
        tiles = inputs["aspect_ratio_mask"][:, None].expand(-1, ids.shape[1], -1, -1)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "cross_attention_mask": tiles.contiguous()}
    token = getattr(config, "image_token_id", None) or config.image_token_index
    if model_type in NATIVE:  # one prompt; each image's tokens after a vision-start token, as the processor writes them
        start = getattr(config, "vision_start_token_id", None) or getattr(config, "image_start_token_id", None) or 5
        images = [torch.cat([torch.tensor([start]), torch.full((int(i.shape[0]),), token)]) for i in items]
        rows = [torch.cat([text[:2], *images, text[2:]])]
    else:
        rows = [torch.cat([text[:2], torch.full((n,), token), text[2:]]) for n in _tokens_per_sample(model_type, items, inputs)]
    width = max(len(r) for r in rows)
    ids = torch.stack([torch.cat([torch.zeros(width - len(r), dtype=torch.long), r]) for r in rows])  # left-padded
    mask = torch.stack([torch.cat([torch.zeros(width - len(r), dtype=torch.long), torch.ones(len(r), dtype=torch.long)]) for r in rows])
    extra = {}
    if model_type in ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "glm4v"):
        extra["mm_token_type_ids"] = (ids == token).long()
    if model_type in ("gemma3", "shieldgemma2"):
        extra["token_type_ids"] = (ids == token).long()
    return {"input_ids": ids, "attention_mask": mask} | extra


def _tokens_per_sample(model_type: str, items: list[torch.Tensor], inputs: dict[str, torch.Tensor]) -> list[int]:
    if model_type in ("idefics2", "idefics3", "smolvlm"):  # a list per sample already
        return [int(i.shape[0]) for i in items]
    if len(items) == 1 and items[0].dim() == 3:  # a tensor [images or tiles, tokens, D]
        rows = items[0]
        if model_type in ("aya_vision", "cohere2_vision", "llama4", "internvl"):
            return [rows.shape[0] * rows.shape[1]]  # every tile of every image in one prompt
        return [rows.shape[1]] * rows.shape[0]
    if model_type in ("llava", "vipllava", "llava_layers"):
        return [int(i.shape[0]) for i in items]
    return [sum(int(i.shape[0]) for i in items)]  # per-image lists: all images in one prompt


def write_photos(folder: Path, generated: int = 6) -> list[Path]:
    """Real photos that scikit-image ships (no download), and generated images, as PNG files."""
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
    tower = {f"model.vision_tower.{k}": v.contiguous().to(torch.bfloat16) for k, v in CLIPVisionModel(config.vision_config).state_dict().items()}
    projector = {
        "model.multi_modal_projector.linear_1.weight": torch.randn(4096, 1024) * 0.02,
        "model.multi_modal_projector.linear_1.bias": torch.randn(4096) * 0.02,
        "model.multi_modal_projector.linear_2.weight": torch.randn(4096, 4096) * 0.02,
        "model.multi_modal_projector.linear_2.bias": torch.randn(4096) * 0.02,
    }
    shards = {"model-00001-of-00002.safetensors": tower, "model-00002-of-00002.safetensors": {k: v.to(torch.bfloat16) for k, v in projector.items()}}
    for name, tensors in shards.items():
        save_file(tensors, folder / name)
    weight_map = {key: name for name, tensors in shards.items() for key in tensors}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def save_release_qwen25_vision(folder: Path) -> None:
    """Qwen2.5-VL-7B's vision side at release size (32 blocks, width 1280, 16 heads, window 112,
    full attention in blocks 7/15/23/31, merger to 3584: ~670M parameters) with random weights,
    in bf16, in a folder whose config.json is the released one's shape, with the released
    processor settings. Only the tower's tensors are written: mmexport never reads the LLM's."""
    import json

    from safetensors.torch import save_file
    from transformers import Qwen2_5_VLConfig, Qwen2VLImageProcessor
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    vision = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584, window_size=112)
    vision |= dict(fullatt_block_indexes=[7, 15, 23, 31], patch_size=14, spatial_merge_size=2, temporal_patch_size=2, hidden_act="silu")
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
    shards = {f"model-0000{i + 1}-of-00002.safetensors": keys[i::2] for i in range(2)}
    for name, names in shards.items():
        save_file({k: state[k] for k in names}, folder / name)
    weight_map = {key: name for name, names in shards.items() for key in names}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
