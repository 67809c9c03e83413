"""What each family's tiny test model looks like, declared once in one table (TINY) that every
family test reads: a transformers config at tiny sizes, the image processor its releases ship
(at those sizes), how that processor is called and how a prompt places the image tokens. Models
are built with small non-zero random weights, saved in bf16 with save_pretrained (sharded, as
released folders are) with their processor, and reloaded in fp32 as a user would."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from mmexport.hf import family
from mmexport.samples import photos

IMAGE_TOKEN = 100
LLAMA = dict(model_type="llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
CLIP = dict(model_type="clip_vision_model", hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2, image_size=28, patch_size=7)
SIGLIP = dict(model_type="siglip_vision_model", hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
VIT = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
OPT = dict(model_type="opt", hidden_size=32, num_hidden_layers=2, ffn_dim=64, num_attention_heads=4, vocab_size=128, word_embed_proj_dim=32)
PINPOINTS = [[28, 28], [28, 56], [56, 28]]
QWEN_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=160)
QWEN_TEXT |= {"rope_scaling": {"type": "mrope", "mrope_section": [2, 1, 1]}}
QWEN_TOKENS = dict(image_token_id=151, video_token_id=152, vision_start_token_id=150, vision_end_token_id=153)
QWEN3_TEXT = dict(vocab_size=160, hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=12)
QWEN3_TEXT |= {"rope_parameters": {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 2, 2], "mrope_interleaved": True}}
QWEN3_VISION = dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=48, num_position_embeddings=64, patch_size=16)
QWEN3_VISION |= dict(deepstack_visual_indexes=[0, 1], spatial_merge_size=2)
QWEN3_5_VISION = {k: v for k, v in QWEN3_VISION.items() if k != "deepstack_visual_indexes"}  # Qwen3-VL's tower without deepstack
QWEN3_5_TEXT = dict(vocab_size=160, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=12)
QWEN3_5_TEXT |= dict(layer_types=["linear_attention", "full_attention"], linear_num_key_heads=2, linear_num_value_heads=2)
QWEN3_5_TEXT |= dict(linear_key_head_dim=8, linear_value_head_dim=8)
QWEN3_5_TEXT |= {
    "rope_parameters": {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 2, 2], "mrope_interleaved": True, "partial_rotary_factor": 1.0}
}
SMALL_MOE = dict(num_experts=2, num_experts_per_tok=1, moe_intermediate_size=32, shared_expert_intermediate_size=32)
GLM_VISION = dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=48, out_hidden_size=48, patch_size=14, spatial_merge_size=2, image_size=56)
GLM_TEXT = dict(vocab_size=160, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
GLM_TEXT |= {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 2, 2], "partial_rotary_factor": 1.0}}
GLM_TOKENS = dict(image_token_id=151, video_token_id=152, image_start_token_id=150, image_end_token_id=153, video_start_token_id=154, video_end_token_id=155)
COHERE = dict(
    model_type="cohere2", vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8
)
COHERE |= dict(sliding_window=16, pad_token_id=0, bos_token_id=1, eos_token_id=2)
GEMMA_TEXT = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
GEMMA3_TEXT = GEMMA_TEXT | dict(model_type="gemma3_text", query_pre_attn_scalar=16, sliding_window=8, layer_types=["sliding_attention", "full_attention"])
SQUARE = {"height": 28, "width": 28}
QWEN_SIZE = {"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 48}


@dataclass(frozen=True)
class Tiny:
    """One family's tiny model: `model_type` is the registry's; a case name may differ (LLaVA
    with a list of vision_feature_layer is a second case of 'llava')."""

    model_type: str
    config: Callable[[Any], Any]  # transformers (the module) -> the config
    processor: Callable[[Any], Any] | None = None  # transformers -> the processor its releases ship; None: it needs torchvision
    call: str = "images"  # how the processor takes photos: "images" (a list), "samples" (one list per sample), "nested" ([photos])
    # "per_item" (a prompt per item), "together" (one), "native" (one, a start token per image), "cross"; "processor": its forward
    # reads the processor's own prompt layout (MiniCPM-V 4.7's canvas markers), not built here: no forward-level tests
    prompt: str = "per_item"
    token_types: str | None = None  # ids the forward reads beside input_ids, 1 at image tokens
    features: Callable[[Any, dict], list[torch.Tensor]] | None = None  # transformers' answer where get_image_features is not it
    tensors: Callable[[Any, int, int], dict] | None = None  # (config, images, seed) -> inputs in the processor's layout, where it needs torchvision
    loader: str = "AutoModelForImageTextToText"
    fast: bool = False  # in the fast tier


def _qwen2_vl(t):
    vision = dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2)
    return t.Qwen2VLConfig(vision_config=vision, text_config=QWEN_TEXT, **QWEN_TOKENS)


def _qwen2_5_vl(t):  # window 56 px: 2x2 merged tokens; block 1 attends over the whole image
    vision = dict(depth=3, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2)
    return t.Qwen2_5_VLConfig(vision_config=vision | dict(window_size=56, fullatt_block_indexes=[1]), text_config=QWEN_TEXT, **QWEN_TOKENS)


def _qwen3_vl_moe(t):  # the same vision side before a mixture-of-experts LLM
    text = QWEN3_TEXT | dict(num_experts=2, num_experts_per_tok=1, moe_intermediate_size=32, decoder_sparse_step=1)
    return t.Qwen3VLMoeConfig(vision_config=QWEN3_VISION, text_config=text, **QWEN_TOKENS)


def _glm4v(t, cls: str = "Glm4vConfig", **text):
    return getattr(t, cls)(vision_config=GLM_VISION, text_config=GLM_TEXT | text, **GLM_TOKENS)


def _qwen3_5(t, cls: str = "Qwen3_5Config", **text):
    return getattr(t, cls)(vision_config=QWEN3_5_VISION, text_config=QWEN3_5_TEXT | text, **QWEN_TOKENS)


def _qwen3_processor(t, cls: str = "Qwen2VLImageProcessor"):
    return getattr(t, cls)(patch_size=16, size={"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 48})


def _cohere_compass(t):
    text = dict(QWEN3_TEXT, num_hidden_layers=2, layer_types=["full_attention"] * 2)
    text["rope_parameters"] = {"full_attention": QWEN3_TEXT["rope_parameters"]}  # per layer type
    return t.CohereCompassConfig(vision_config=QWEN3_VISION, text_config=text, **QWEN_TOKENS)


def _llama4(t):
    vision = dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    vision |= dict(pixel_shuffle_ratio=0.5, projector_input_dim=48, projector_output_dim=48, vision_output_dim=48)
    text = dict(vocab_size=128, hidden_size=32, intermediate_size=32, intermediate_size_mlp=64, num_hidden_layers=2, num_attention_heads=4)
    text |= dict(num_key_value_heads=2, head_dim=8, num_local_experts=2, num_experts_per_tok=1, interleave_moe_layer_step=2, attention_chunk_size=64)
    return t.Llama4Config(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN, boi_token_index=101, eoi_token_index=102)


def _mllama(t):
    vision = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_global_layers=1, attention_heads=2, image_size=28, patch_size=7)
    vision |= dict(max_num_tiles=2, supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]], intermediate_layers_indices=[0, 2], vision_output_dim=72)
    text = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)
    return t.MllamaConfig(vision_config=vision, text_config=text | {"cross_attention_layers": [1]}, image_token_index=127)


def _mistral3(t):
    pixtral = dict(model_type="pixtral", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, patch_size=4, image_size=64)
    text = LLAMA | {"model_type": "mistral", "head_dim": 8, "rms_norm_eps": 1e-5}
    return t.Mistral3Config(vision_config=pixtral, text_config=text, image_token_index=IMAGE_TOKEN, spatial_merge_size=2, projector_hidden_act="gelu")


def _mistral_large4(t):
    """Mistral 3's vision side before a DeepSeek-style (MLA, indexed attention, MoE) LLM."""
    text = dict(vocab_size=128, hidden_size=32, intermediate_size=64, moe_intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
    text |= dict(num_key_value_heads=2, n_shared_experts=1, n_routed_experts=2, num_experts_per_tok=1, kv_lora_rank=16, q_lora_rank=None)
    text |= dict(qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=8, index_head_dim=16, index_n_heads=2, head_dim=16, qk_head_dim=16)
    text |= dict(mlp_layer_types=["dense", "sparse"], layer_types=["indexed_attention"] * 2, indexer_types=["full"] * 2, no_rope_layers=[1, 0])
    text |= dict(kv_source_layers=[0, 1], rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    pixtral = _mistral3(t).vision_config
    return t.MistralLarge4Config(
        vision_config=pixtral.to_dict(), text_config=text, image_token_id=IMAGE_TOKEN, spatial_merge_size=2, projector_hidden_act="gelu"
    )


def _exaone4_5(t):
    """Qwen2.5-VL's tower with grouped-query attention (4 query heads, 2 key-value heads)."""
    vision = dict(depth=3, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=4, num_key_value_heads=2, patch_size=14)
    vision |= dict(spatial_merge_size=2, window_size=56, fullatt_block_indexes=[1])
    text = dict(model_type="exaone4", vocab_size=160, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    return t.Exaone4_5_Config(vision_config=vision, text_config=text | dict(head_dim=8), **QWEN_TOKENS)


def _llava_onevision1_5(t):
    """A Conv2d patch embedding (one frame per patch), a class token per frame, a Qwen3 LLM with 1-D positions."""
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=48, patch_size=14, spatial_merge_size=2)
    text = dict(model_type="qwen3", vocab_size=160, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4)
    return t.LlavaOnevision15Config(vision_config=vision, text_config=text | dict(num_key_value_heads=2, head_dim=12), **QWEN_TOKENS)


def _glm_ocr(t):
    vision = {k: v for k, v in GLM_VISION.items() if k != "image_size"}  # no position table to size
    return t.GlmOcrConfig(vision_config=vision, text_config=GLM_TEXT, **GLM_TOKENS)


def _hyperclovax(t):
    vision = dict(depth=3, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14, spatial_merge_size=2, window_size=56)
    text = dict(vocab_size=160, hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=12)
    return t.HyperCLOVAXVisionV2Config(vision_config=vision | dict(fullatt_block_indexes=[1]), text_config=text, **QWEN_TOKENS)


def _qwen2_5_omni(t):
    vision = dict(depth=4, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, fullatt_block_indexes=[1, 3], window_size=56)
    audio = dict(encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, d_model=16, output_dim=64)
    text = dict(vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 6, 6]}
    tokens = dict(
        image_token_index=151, video_token_index=152, audio_token_index=149, vision_start_token_id=150
    )  # the start id: transformers' own forward reads it
    return t.Qwen2_5OmniThinkerConfig(vision_config=vision, audio_config=audio, text_config=text, **tokens)


def _qwen3_omni(t):
    vision = dict(QWEN3_VISION, out_hidden_size=64)
    audio = dict(encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, d_model=16, output_dim=64, downsample_hidden_size=8)
    text = dict(vocab_size=200, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32)
    text |= dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16)
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [6, 5, 5], "mrope_interleaved": True}
    tokens = dict(image_token_id=151, video_token_id=152, audio_token_id=149, vision_start_token_id=150, vision_end_token_id=153)
    return t.Qwen3OmniMoeThinkerConfig(vision_config=vision, audio_config=audio, text_config=text, **tokens)


def _lighton_ocr(t):
    text = dict(vocab_size=160, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    return t.LightOnOcrConfig(vision_config=_mistral3(t).vision_config.to_dict(), text_config=text, image_token_id=IMAGE_TOKEN, spatial_merge_size=2)


def _paddleocr_vl(t):
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14, spatial_merge_size=2)
    text = dict(vocab_size=160, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e4, "mrope_section": [2, 3, 3]}
    return t.PaddleOCRVLConfig(vision_config=vision, text_config=text, **QWEN_TOKENS)


def _lfm2_vl(t):
    vision = dict(model_type="siglip2_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_patches=64)
    vision |= dict(patch_size=4, vision_use_head=False)
    text = dict(vocab_size=160, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    return t.Lfm2VlConfig(
        vision_config=vision, text_config=text | dict(layer_types=["conv", "full_attention"]), image_token_id=IMAGE_TOKEN, projector_hidden_size=48
    )


def _gemma4(t):  # a 12.7 M-parameter model; Gemma 4's vocabulary (its per-layer embeddings index it) is most of it
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, head_dim=16)
    vision |= dict(position_embedding_size=256, patch_size=16, pooling_kernel_size=3)
    text = dict(vocab_size=262144, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    text |= dict(head_dim=16, global_head_dim=16, hidden_size_per_layer_input=8, vocab_size_per_layer_input=262144, sliding_window=16)
    text |= dict(layer_types=["sliding_attention", "full_attention"])
    return t.Gemma4Config(vision_config=vision, text_config=text, audio_config=None)


def shrunk(model_type: str, **given: Any) -> Tiny:
    """A family whose tiny model is mmexport.hf.tiny's generic shrink of transformers' own config class."""
    from mmexport.hf.tiny import tiny_config, tiny_processor

    return Tiny(model_type, lambda t: tiny_config(model_type), lambda t: tiny_processor(model_type, tiny_config(model_type)), **given)


def _naflex_tiles(config, images: int, seed: int) -> dict[str, torch.Tensor]:
    """What Lfm2VlImageProcessor returns (it needs torchvision): one tile per image, of its own
    (rows, columns) of patches in multiples of the downsample factor, padded to the most patches."""
    f, dim = config.downsample_factor, 3 * config.vision_config.patch_size**2
    shapes = [((2 + (seed + i) % 3) * f, (3 - (seed + i) % 2) * f) for i in range(images)]
    patches = max(h * w for h, w in shapes)
    generator = torch.Generator().manual_seed(seed)
    pixels, mask = torch.zeros(images, patches, dim), torch.zeros(images, patches, dtype=torch.long)
    for j, (h, w) in enumerate(shapes):
        pixels[j, : h * w], mask[j, : h * w] = torch.rand(h * w, dim, generator=generator) * 2 - 1, 1
    return {"pixel_values": pixels, "pixel_attention_mask": mask, "spatial_shapes": torch.tensor(shapes)}


def _merged_patches(config, images: int, seed: int) -> dict[str, torch.Tensor]:
    """What Gemma4UnifiedImageProcessor returns (it needs torchvision): each image's merged patches
    (rows x columns of them, row-major as its patches_merge orders them, pixels in [0, 1]) padded
    to the batch's count, and their (column, row) positions, -1 for padding."""
    dim = 3 * (config.vision_config.patch_size * config.vision_config.pooling_kernel_size) ** 2
    shapes = [(2 + (seed + i) % 3, 3 - (seed + i) % 2) for i in range(images)]
    patches = max(h * w for h, w in shapes) + 2  # the processor pads to its soft-token budget
    generator = torch.Generator().manual_seed(seed)
    pixels, positions = torch.zeros(images, patches, dim), torch.full((images, patches, 2), -1, dtype=torch.long)
    for j, (h, w) in enumerate(shapes):
        rows, columns = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        pixels[j, : h * w], positions[j, : h * w] = torch.rand(h * w, dim, generator=generator), torch.stack([columns.flatten(), rows.flatten()], 1)
    return {"pixel_values": pixels, "image_position_ids": positions}


def _with_tokens(model_type: str, **ids: int):
    """The generic shrink with the special tokens a release sets (MiniCPM-V's class leaves them
    None; Video-LLaVA's defaults sit past the vocabulary the shrink keeps)."""
    from mmexport.hf.tiny import tiny_config

    made = tiny_config(model_type)
    for name, value in ids.items():
        setattr(made, name, value)
    return made


def _hunyuan_vl(t):  # its releases set the multimodal rotary sections (the config class's default has none: its forward fails)
    from mmexport.hf.tiny import tiny_config

    made = tiny_config("hunyuan_vl")
    made.text_config.rope_parameters = dict(made.text_config.rope_parameters, mrope_section=[4, 4, 4, 4])
    return made


def _grid_patches(config, images: int, seed: int) -> dict[str, torch.Tensor]:
    """What Nemotron-H Omni's image processor returns (it needs torchvision): each image's patches
    row-major, channel-major within (normalised pixels), and image_grid_hw of even sides."""
    vision = config.vision_config
    sizes = [(2 * (1 + (seed + i) % 3), 2 * (3 - (seed + i) % 2)) for i in range(images)]
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(sum(h * w for h, w in sizes), vision.num_channels * vision.patch_size**2, generator=generator)
    return {"pixel_values": pixels, "image_grid_hw": torch.tensor(sizes)}


def _phi4_multimodal(t):
    vision = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2, image_size=56, patch_size=7, crop_size=56)
    audio = dict(num_blocks=1, hidden_size=16, num_attention_heads=2, intermediate_size=32, depthwise_separable_out_channel=16, nemo_conv_channels=16)
    text = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    return t.Phi4MultimodalConfig(
        **text, pad_token_id=0, vision_config=vision | dict(image_token_id=IMAGE_TOKEN), audio_config=audio | dict(ext_pw_out_channel=16)
    )


PHI4_CANVASES = ((1, 2, "height", 3), (2, 1, "width", 5), (1, 1, None, 0), (2, 3, "height", 6))  # crops down, across; the padded side, patches


def _phi4_crops(config, images: int, seed: int) -> dict[str, torch.Tensor]:
    """What Phi-4-multimodal's image processor returns (it needs torchvision): per image a global
    crop, then the canvas's crops row by row, padding patches (white, masked) at its bottom or
    right; samples padded to the most crops with zero pixels and an all-ones mask."""
    vision, generator = config.vision_config, torch.Generator().manual_seed(seed)
    size, side = vision.crop_size, vision.crop_size // vision.patch_size
    canvases = [PHI4_CANVASES[(seed + i) % len(PHI4_CANVASES)] for i in range(images)]
    crops = 1 + max(down * across for down, across, _, _ in canvases)
    pixels, mask = torch.zeros(images, crops, 3, size, size), torch.ones(images, crops, side, side)
    for i, (down, across, padded, count) in enumerate(canvases):
        canvas, kept = torch.randn(3, down * size, across * size, generator=generator), torch.ones(down * side, across * side)
        if padded == "height":
            canvas[:, -count * vision.patch_size :], kept[-count:] = 1.0, 0
        elif padded == "width":
            canvas[:, :, -count * vision.patch_size :], kept[:, -count:] = 1.0, 0
        for k in range(down * across):
            r, c = divmod(k, across)
            pixels[i, 1 + k] = canvas[:, r * size : (r + 1) * size, c * size : (c + 1) * size]
            mask[i, 1 + k] = kept[r * side : (r + 1) * side, c * side : (c + 1) * side]
        pixels[i, 0] = torch.randn(3, size, size, generator=generator)
    sizes = torch.tensor([[down * size, across * size] for down, across, _, _ in canvases])
    return {"image_pixel_values": pixels, "image_sizes": sizes, "image_attention_mask": mask}


def _phi4_features(model, inputs) -> list[torch.Tensor]:
    """transformers' image embedding over a prompt of image tokens only, as many as its processor
    counts for each canvas (rows and columns kept after pooling, a newline per row, the separator,
    the global crop's rows with newlines); its tower with eager attention, bidirectional as released
    (transformers' sdpa path attends causally when no crop of the call is padded)."""
    embed, token = model.model.embed_tokens_extend.image_embed, model.config.vision_config.image_token_id
    pooled = embed.crop_size // model.config.vision_config.patch_size // 2
    counts = []
    for i, (height, width) in enumerate(inputs["image_sizes"].tolist()):
        down, across = height // embed.crop_size, width // embed.crop_size
        kept = inputs["image_attention_mask"][i, 1 : 1 + down * across, ::2, ::2]
        canvas = kept.reshape(down, across, pooled, pooled).transpose(1, 2).reshape(down * pooled, across * pooled)
        rows, cols = int(canvas[:, 0].sum()), int(canvas[0].sum())
        counts.append(rows * (cols + 1) + 1 + pooled * (pooled + 1))
    ids, config = torch.full((1, sum(counts)), token), embed.img_processor.config
    was, config._attn_implementation = config._attn_implementation, "eager"  # sdpa turns causal on a batch without padding
    try:
        merged = embed(
            ids, torch.zeros(1, sum(counts), model.config.hidden_size), inputs["image_pixel_values"], inputs["image_sizes"], inputs["image_attention_mask"]
        )[0]
    finally:
        config._attn_implementation = was
    return list(merged.split(counts))


def _gemma3(t, cls: str = "Gemma3Config", **extra):
    vision = SIGLIP | {"vision_use_head": False}
    return getattr(t, cls)(
        text_config=GEMMA3_TEXT, vision_config=vision, mm_tokens_per_image=4, boi_token_index=101, eoi_token_index=102, image_token_index=IMAGE_TOKEN, **extra
    )


def _instructblip(t):
    qformer = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, encoder_hidden_size=24, vocab_size=64)
    return t.InstructBlipConfig(
        vision_config=VIT, qformer_config=qformer | dict(max_position_embeddings=32), text_config=OPT, num_query_tokens=8, image_token_index=IMAGE_TOKEN
    )


def _blip2(t):
    qformer = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, encoder_hidden_size=24)
    return t.Blip2Config(vision_config=VIT, qformer_config=qformer, text_config=OPT, num_query_tokens=8, image_token_index=IMAGE_TOKEN)


def _idefics2(t):
    perceiver = dict(hidden_size=32, resampler_n_latents=8, resampler_depth=2, resampler_n_heads=4, resampler_head_dim=8, num_key_value_heads=2)
    return t.Idefics2Config(vision_config=VIT, perceiver_config=perceiver, text_config=LLAMA | {"model_type": "mistral"}, image_token_id=IMAGE_TOKEN)


def _mllama_features(model, inputs):
    """No get_image_features: the forward's own path to cross_attention_states."""
    vision = model.model.vision_model(**inputs).last_hidden_state
    return [model.model.multi_modal_projector(vision).reshape(-1, vision.shape[-2], model.config.text_config.hidden_size)]


def _llama4_features(model, inputs):
    """get_image_features stops before the projector that the forward applies."""
    return [model.multi_modal_projector(model.get_image_features(**inputs, return_dict=True).last_hidden_state)]


def _clip(t):
    return t.CLIPImageProcessor(size={"shortest_edge": 28}, crop_size=SQUARE)


def _crops(cls):
    return lambda t: getattr(t, cls)(size={"longest_edge": 56}, max_image_size={"longest_edge": 28})


TINY: dict[str, Tiny] = {
    "llava": Tiny("llava", lambda t: t.LlavaConfig(vision_config=CLIP, text_config=LLAMA, image_token_id=IMAGE_TOKEN, image_seq_length=16), _clip, fast=True),
    "llava_layers": Tiny(
        "llava", lambda t: t.LlavaConfig(vision_config=CLIP, text_config=LLAMA, image_token_id=IMAGE_TOKEN, vision_feature_layer=[-2, -1, 1]), _clip
    ),
    "llava_next": Tiny(
        "llava_next",
        lambda t: t.LlavaNextConfig(vision_config=CLIP, text_config=LLAMA, image_token_id=IMAGE_TOKEN, image_grid_pinpoints=PINPOINTS),
        lambda t: t.LlavaNextImageProcessor(size={"shortest_edge": 28}, crop_size=SQUARE, image_grid_pinpoints=PINPOINTS),
        prompt="together",
    ),
    "llava_onevision": Tiny(
        "llava_onevision",
        lambda t: t.LlavaOnevisionConfig(
            vision_config=SIGLIP,
            text_config=LLAMA | {"model_type": "qwen2"},
            image_token_id=IMAGE_TOKEN,
            video_token_id=IMAGE_TOKEN + 1,
            image_grid_pinpoints=PINPOINTS,
        ),
        lambda t: t.LlavaNextImageProcessor(size={"shortest_edge": 28}, crop_size=SQUARE, image_grid_pinpoints=PINPOINTS),
        prompt="together",
    ),
    "llava_next_video": Tiny(
        "llava_next_video",
        lambda t: t.LlavaNextVideoConfig(
            vision_config=CLIP, text_config=LLAMA, image_token_id=IMAGE_TOKEN, video_token_id=IMAGE_TOKEN + 1, image_grid_pinpoints=PINPOINTS
        ),
        lambda t: t.LlavaNextImageProcessor(size={"shortest_edge": 28}, crop_size=SQUARE, image_grid_pinpoints=PINPOINTS),
        prompt="together",
    ),
    "vipllava": Tiny(
        "vipllava", lambda t: t.VipLlavaConfig(vision_config=CLIP, text_config=LLAMA, image_token_index=IMAGE_TOKEN, vision_feature_layer=[-2, -1, 0, 2]), _clip
    ),
    "paligemma": Tiny(
        "paligemma",
        lambda t: t.PaliGemmaConfig(
            vision_config=SIGLIP | {"projection_dim": 32},
            text_config=dict(GEMMA_TEXT, model_type="gemma", num_image_tokens=16),
            image_token_id=IMAGE_TOKEN,
            projection_dim=32,
        ),
        lambda t: t.SiglipImageProcessor(size=SQUARE),
    ),
    "gemma3": Tiny("gemma3", _gemma3, lambda t: t.Gemma3ImageProcessor(size=SQUARE), token_types="token_type_ids"),
    "shieldgemma2": Tiny(
        "shieldgemma2",
        lambda t: _gemma3(t, "ShieldGemma2Config", yes_token_index=7, no_token_index=8),
        lambda t: t.Gemma3ImageProcessor(size=SQUARE),
        token_types="token_type_ids",
        loader="ShieldGemma2ForImageClassification",
    ),
    "blip-2": Tiny("blip-2", _blip2, lambda t: t.BlipImageProcessor(size=SQUARE), fast=True),
    "instructblip": Tiny("instructblip", _instructblip, lambda t: t.BlipImageProcessor(size=SQUARE)),
    "idefics2": Tiny(
        "idefics2", _idefics2, lambda t: t.Idefics2ImageProcessor(size={"shortest_edge": 14, "longest_edge": 28}, do_image_splitting=True), call="samples"
    ),
    "idefics3": Tiny(
        "idefics3",
        lambda t: t.Idefics3Config(vision_config=VIT, text_config=LLAMA, image_token_id=IMAGE_TOKEN, scale_factor=2),
        _crops("Idefics3ImageProcessor"),
        call="samples",
        fast=True,
    ),
    "smolvlm": Tiny(
        "smolvlm",
        lambda t: t.SmolVLMConfig(vision_config=VIT, text_config=LLAMA, image_token_id=IMAGE_TOKEN, scale_factor=2),
        _crops("SmolVLMImageProcessor"),
        call="samples",
    ),
    "internvl": Tiny(
        "internvl",
        lambda t: t.InternVLConfig(
            vision_config=VIT | dict(image_size=[28, 28], patch_size=[7, 7]), text_config=LLAMA | {"model_type": "qwen2"}, image_token_id=IMAGE_TOKEN
        ),
        lambda t: t.GotOcr2ImageProcessor(size=SQUARE, crop_to_patches=True, max_patches=3),
        prompt="together",
    ),
    "aya_vision": Tiny(
        "aya_vision",
        lambda t: t.AyaVisionConfig(
            vision_config=SIGLIP | {"vision_use_head": False},
            text_config=COHERE,
            downsample_factor=2,
            alignment_intermediate_size=48,
            image_token_index=IMAGE_TOKEN,
            vision_feature_select_strategy="full",
        ),
        lambda t: t.GotOcr2ImageProcessor(size=SQUARE, crop_to_patches=True, max_patches=3),
        prompt="together",
    ),
    "cohere2_vision": Tiny(
        "cohere2_vision",
        lambda t: t.Cohere2VisionConfig(
            vision_config=SIGLIP, text_config=COHERE, downsample_factor=2, alignment_intermediate_size=48, image_token_id=IMAGE_TOKEN
        ),
        prompt="together",
    ),
    "llama4": Tiny("llama4", _llama4, prompt="together", features=_llama4_features),
    "mllama": Tiny(
        "mllama", _mllama, lambda t: t.MllamaImageProcessor(size=SQUARE, max_image_tiles=2), call="nested", prompt="cross", features=_mllama_features
    ),
    "qwen2_vl": Tiny("qwen2_vl", _qwen2_vl, lambda t: t.Qwen2VLImageProcessor(size=QWEN_SIZE), prompt="native", token_types="mm_token_type_ids"),
    "qwen2_5_vl": Tiny(
        "qwen2_5_vl", _qwen2_5_vl, lambda t: t.Qwen2VLImageProcessor(size=QWEN_SIZE), prompt="native", token_types="mm_token_type_ids", fast=True
    ),
    "qwen3_vl": Tiny(
        "qwen3_vl",
        lambda t: t.Qwen3VLConfig(vision_config=QWEN3_VISION, text_config=QWEN3_TEXT, **QWEN_TOKENS),
        lambda t: t.Qwen2VLImageProcessor(patch_size=16, size={"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 48}),
        prompt="native",
        token_types="mm_token_type_ids",
    ),
    "qwen3_vl_moe": Tiny(
        "qwen3_vl_moe",
        _qwen3_vl_moe,
        lambda t: t.Qwen2VLImageProcessor(patch_size=16, size={"shortest_edge": 32 * 32 * 4, "longest_edge": 32 * 32 * 48}),
        prompt="native",
        token_types="mm_token_type_ids",
    ),
    "glm4v": Tiny("glm4v", _glm4v, lambda t: t.Glm4vImageProcessor(size=QWEN_SIZE), prompt="native", token_types="mm_token_type_ids"),
    "glm46v": Tiny(
        "glm46v", lambda t: _glm4v(t, "Glm46VConfig"), lambda t: t.Glm46VImageProcessor(size=QWEN_SIZE), prompt="native", token_types="mm_token_type_ids"
    ),
    "glm4v_moe": Tiny(
        "glm4v_moe",
        lambda t: _glm4v(t, "Glm4vMoeConfig", moe_intermediate_size=32, num_experts_per_tok=1, n_shared_experts=1, n_routed_experts=2, first_k_dense_replace=1),
        lambda t: t.Glm4vImageProcessor(size=QWEN_SIZE),
        prompt="native",
        token_types="mm_token_type_ids",
    ),
    "glmga": Tiny(
        "glmga", lambda t: _glm4v(t, "GlmgaConfig"), lambda t: t.GlmgaImageProcessor(size=QWEN_SIZE), prompt="native", token_types="mm_token_type_ids"
    ),
    "exaone4_5": Tiny("exaone4_5", _exaone4_5, lambda t: t.Qwen2VLImageProcessor(size=QWEN_SIZE), prompt="native"),  # 1-D positions
    "llava_onevision1_5": Tiny(
        "llava_onevision1_5", _llava_onevision1_5, lambda t: t.Qwen2VLImageProcessor(size=QWEN_SIZE, temporal_patch_size=1), prompt="native"
    ),
    "glm_ocr": Tiny("glm_ocr", _glm_ocr, lambda t: t.Glm4vImageProcessor(size=QWEN_SIZE), prompt="native", token_types="mm_token_type_ids"),
    "hyperclovax_vision_v2": Tiny("hyperclovax_vision_v2", _hyperclovax, lambda t: t.Qwen2VLImageProcessor(size=QWEN_SIZE), prompt="native"),
    "qwen2_5_omni_thinker": Tiny("qwen2_5_omni_thinker", _qwen2_5_omni, lambda t: t.Qwen2VLImageProcessor(size=QWEN_SIZE), prompt="native"),
    "qwen3_omni_moe_thinker": Tiny("qwen3_omni_moe_thinker", _qwen3_omni, _qwen3_processor, prompt="native"),  # positions from the ids alone
    "lighton_ocr": Tiny("lighton_ocr", _lighton_ocr, lambda t: t.PixtralImageProcessor(size={"longest_edge": 64}, patch_size=8), prompt="native"),
    "paddleocr_vl": Tiny(
        "paddleocr_vl", _paddleocr_vl, lambda t: t.PaddleOCRVLImageProcessor(size=QWEN_SIZE), prompt="native", token_types="mm_token_type_ids"
    ),
    # its own image processor needs torchvision; PaddleOCR-VL's packs patches the same way (raster order, [patches, 3, P, P])
    "kimi_k25": replace(shrunk("kimi_k25", prompt="together"), processor=lambda t: t.PaddleOCRVLImageProcessor(size=QWEN_SIZE)),
    "lfm2_vl": Tiny("lfm2_vl", _lfm2_vl, prompt="together", tensors=_naflex_tiles),
    # its own image processor needs torchvision; Qwen2-VL's packs patches the same way (block-major, C*T*P*P)
    "minimax_m3_vl": replace(shrunk("minimax_m3_vl", prompt="native"), processor=lambda t: t.Qwen2VLImageProcessor(size=QWEN_SIZE)),
    "glm5_next": shrunk("glm5_next", prompt="native", token_types="mm_token_type_ids"),
    "gemma4": Tiny("gemma4", _gemma4, lambda t: t.Gemma4ImageProcessorPil(max_soft_tokens=70), prompt="together", token_types="mm_token_type_ids"),
    # encoder-free; its processor needs torchvision: where it imports, the folder's own; otherwise tensors in its layout
    "gemma4_unified": shrunk("gemma4_unified", prompt="together", token_types="mm_token_type_ids", tensors=_merged_patches),
    "hunyuan_vl": replace(shrunk("hunyuan_vl", prompt="native", token_types="mm_token_type_ids"), config=_hunyuan_vl),
    "hy_v4_vl": shrunk("hy_v4_vl", prompt="native", token_types="mm_token_type_ids"),
    "minicpmv4_6": replace(
        shrunk("minicpmv4_6", prompt="together"), config=lambda t: _with_tokens("minicpmv4_6", image_token_id=IMAGE_TOKEN)
    ),  # its PIL processor
    "minicpmv4_7": replace(
        shrunk("minicpmv4_7", prompt="processor"), config=lambda t: _with_tokens("minicpmv4_7", image_token_id=IMAGE_TOKEN)
    ),  # 4.6's vision side
    # 4x mode, no window merger; its own image processor needs torchvision, MiniCPM-V 4.6's in 4x mode packs slices the same way
    "minicpm_ocr": Tiny(
        "minicpm_ocr",
        lambda t: _with_tokens("minicpm_ocr", image_token_id=IMAGE_TOKEN),
        lambda t: t.MiniCPMV4_6ImageProcessorPil(downsample_mode="4x", patch_size=16),
        prompt="together",
    ),
    "video_llava": replace(  # its image processor returns pixel_values_images
        shrunk("video_llava"), config=lambda t: _with_tokens("video_llava", image_token_index=IMAGE_TOKEN, video_token_index=IMAGE_TOKEN + 1)
    ),
    "ernie4_5_vl_moe": shrunk("ernie4_5_vl_moe", prompt="native", token_types="mm_token_type_ids"),  # its PIL image processor
    "lfm3_vl": shrunk("lfm3_vl", prompt="together"),  # 1D text positions
    "cosmos3_edge": shrunk("cosmos3_edge", prompt="native", token_types="mm_token_type_ids"),  # GLM-4V's PIL processor
    "nemotron_h_omni": replace(  # its image processor needs torchvision: where it imports, the folder's own
        shrunk("nemotron_h_omni", prompt="together", tensors=_grid_patches), config=lambda t: _with_tokens("nemotron_h_omni", image_token_id=IMAGE_TOKEN)
    ),
    "phi4_multimodal": Tiny(  # its image processor needs torchvision; no get_image_features (the embedding runs in the forward)
        "phi4_multimodal", _phi4_multimodal, prompt="together", tensors=_phi4_crops, features=_phi4_features, loader="Phi4MultimodalForCausalLM"
    ),
    "video_llama_3": shrunk("video_llama_3", prompt="together"),  # its PIL image processor (merge size 1)
    "qwen3_5": Tiny("qwen3_5", _qwen3_5, _qwen3_processor, prompt="native", token_types="mm_token_type_ids"),
    "qwen3_5_moe": Tiny(
        "qwen3_5_moe", lambda t: _qwen3_5(t, "Qwen3_5MoeConfig", **SMALL_MOE), _qwen3_processor, prompt="native", token_types="mm_token_type_ids"
    ),
    "qwen4_exp": Tiny(
        "qwen4_exp",
        lambda t: _qwen3_5(
            t, "Qwen4ExpConfig", **SMALL_MOE, indexer_n_heads=2, indexer_kv_heads=1, indexer_head_dim=12, indexer_budget=16, indexer_compress_ratio=4
        ),
        _qwen3_processor,
        prompt="native",
        token_types="mm_token_type_ids",
    ),
    "cosmos3_omni": Tiny(
        "cosmos3_omni",
        lambda t: t.Cosmos3OmniConfig(vision_config=QWEN3_VISION, text_config=QWEN3_TEXT, **QWEN_TOKENS),
        _qwen3_processor,
        prompt="native",
        token_types="mm_token_type_ids",
    ),
    "cohere_compass": Tiny(
        "cohere_compass",
        _cohere_compass,
        lambda t: _qwen3_processor(t, "CohereCompassImageProcessor"),
        prompt="native",
        token_types="mm_token_type_ids",
    ),
    "mistral3": Tiny("mistral3", _mistral3, lambda t: t.PixtralImageProcessor(size={"longest_edge": 64}, patch_size=8), prompt="native"),
    "mistral_large4": Tiny("mistral_large4", _mistral_large4, lambda t: t.PixtralImageProcessor(size={"longest_edge": 64}, patch_size=8), prompt="native"),
}
TILES = 2  # rows per image where the processor needs torchvision (tensors made here in its layout)


def config(case: str) -> Any:
    import transformers

    return TINY[case].config(transformers)


def build(case: str, seed: int = 0, made: Any = None) -> Any:
    """A tiny random model with small non-zero weights everywhere (biases, gates and Gemma 3's
    zero-initialised projection included, so the image matters)."""
    import transformers

    torch.manual_seed(seed)
    loader = getattr(transformers, TINY[case].loader)
    model = (loader(made or config(case)) if loader is not transformers.AutoModelForImageTextToText else loader.from_config(made or config(case))).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
        for name, parameter in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                parameter.fill_(0.5)  # mllama's cross-attention gates start at 0: the image would not matter
    return model


def processor(case: str) -> Any:
    import transformers

    made = TINY[case].processor
    return made(transformers) if made else None


def save_model(case: str, folder: Path, seed: int = 0, made: Any = None) -> Any:
    """The folder a release looks like (bf16, sharded, with its processor); returns the model a
    user gets from it: from_pretrained in fp32."""
    import transformers

    with warnings.catch_warnings():  # Llama 4's complex rotary buffer is not saved: casting it loses nothing
        warnings.simplefilter("ignore", UserWarning)
        build(case, seed, made).to(torch.bfloat16).save_pretrained(folder, max_shard_size="100KB")
    ready = processor(case)
    if ready is not None:
        ready.save_pretrained(folder)
    return getattr(transformers, TINY[case].loader).from_pretrained(folder, dtype=torch.float32).eval()


def image_inputs(case: str, images: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    """What the model's processor returns for `images` photos; where that processor needs
    torchvision, tensors in its layout. Idefics-style processors get one sample per image
    (padding crops appear where samples differ)."""
    made, tiny = processor(case), TINY[case]
    pictures = photos(images, seed)
    if made is None and tiny.tensors is not None:
        return tiny.tensors(config(case), images, seed)
    if made is None:
        size = config(case).vision_config.image_size
        return {"pixel_values": torch.randn(images * TILES, 3, size, size, generator=torch.Generator().manual_seed(seed))}
    given = {"images": pictures, "samples": [[p] for p in pictures], "nested": [pictures]}[tiny.call]
    out = made(images=given, return_tensors="pt")
    keep = set(family(tiny.model_type).images.names) | _feature_arguments(tiny)  # what the graph and transformers take
    inputs = {k: v for k, v in out.items() if k in keep and isinstance(v, torch.Tensor)}
    if case == "instructblip":  # instructions of different lengths, right-padded
        ids = torch.randint(1, 64, (images, 5), generator=torch.Generator().manual_seed(seed))
        mask = torch.ones(images, 5, dtype=torch.long)
        mask[-1, 3:] = 0
        inputs |= {"qformer_input_ids": ids, "qformer_attention_mask": mask}
    return inputs


def _feature_arguments(tiny: Tiny) -> set[str]:
    """The tensors transformers' get_image_features reads beside the pixels (LLaVA-NeXT's image_sizes)."""
    import inspect

    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as NAMES

    loader = NAMES.get(tiny.model_type, tiny.loader) if tiny.loader == "AutoModelForImageTextToText" else tiny.loader
    features = getattr(getattr(transformers, loader, None), "get_image_features", None)
    return set(inspect.signature(features).parameters) if features is not None else set()


def image_features(model, case: str, inputs: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """transformers' own answer: the image features the LLM receives (one tensor per item of its
    pooler_output, or the tensor's rows), and Qwen3-VL's deepstack features."""
    owner = model.model if hasattr(model, "model") and hasattr(model.model, "get_image_features") else model
    with torch.no_grad():
        if TINY[case].features is not None:
            return TINY[case].features(model, inputs), []
        out = owner.get_image_features(**inputs, return_dict=True)
    pooled = out.pooler_output
    items = list(pooled) if isinstance(pooled, (list, tuple)) else [pooled]
    deepstack = [torch.cat(list(level)) for level in (getattr(out, "deepstack_features", None) or [])]
    return items, deepstack


def prompt(model, case: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """input_ids (and what the family's forward needs beside them) for the images of `inputs`,
    placed as TINY[case].prompt says."""
    tiny, config = TINY[case], model.config
    items, _ = image_features(model, case, inputs)
    text = torch.randint(1, 90, (1, 5), generator=torch.Generator().manual_seed(3))[0]
    if tiny.prompt == "cross":  # Llama 3.2 Vision: an image token, then cross-attention to the tiles
        ids = torch.cat([torch.tensor([config.image_token_index]), text]).repeat(inputs["pixel_values"].shape[0], 1)
        tiles = inputs["aspect_ratio_mask"][:, None].expand(-1, ids.shape[1], -1, -1)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "cross_attention_mask": tiles.contiguous()}
    token = getattr(config, "image_token_id", None) or getattr(config, "image_token_index", None) or config.vision_config.image_token_id
    if tiny.prompt == "native":  # one prompt; each image's tokens between vision-start and -end tokens, as the processor writes them
        start = getattr(config, "vision_start_token_id", None) or getattr(config, "image_start_token_id", None) or 5
        end = getattr(config, "vision_end_token_id", None) or getattr(config, "image_end_token_id", None) or 6
        images = [torch.cat([torch.tensor([start]), torch.full((int(i.shape[0]),), token), torch.tensor([end])]) for i in items]
        rows = [torch.cat([text[:2], *images, text[2:]])]
    else:
        rows = [torch.cat([text[:2], torch.full((n,), token), text[2:]]) for n in _tokens(tiny.prompt, items)]
    width = max(len(r) for r in rows)
    ids = torch.stack([torch.cat([torch.zeros(width - len(r), dtype=torch.long), r]) for r in rows])  # left-padded
    mask = torch.stack([torch.cat([torch.zeros(width - len(r), dtype=torch.long), torch.ones(len(r), dtype=torch.long)]) for r in rows])
    extra = {tiny.token_types: (ids == token).long()} if tiny.token_types else {}
    return {"input_ids": ids, "attention_mask": mask} | extra


def _tokens(style: str, items: list[torch.Tensor]) -> list[int]:
    """Image tokens per prompt: one prompt per item (a tensor's rows are its items), or all in one."""
    rows = list(items[0]) if len(items) == 1 and items[0].dim() == 3 else items
    counts = [int(r.reshape(-1, r.shape[-1]).shape[0]) for r in rows]
    return counts if style == "per_item" else [sum(counts)]
