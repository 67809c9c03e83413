"""Tiny folders a real vLLM can load (tests/vllm_generate.py runs in vLLM's own environment): a
word-level tokenizer that knows the model's image tokens, the processor vLLM runs on pixels, and
LLaVA's CLIP tower under the hub's key names (vLLM 0.32 loads only those)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.families import config, save_model

WORDS = [f"w{i}" for i in range(90)]


def tokenizer(special: dict[str, int], vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: 3 + i for i, w in enumerate(WORDS)}}
    vocab |= special
    for i in range(vocab_size):  # every id has a token, so any sampled id decodes
        if i not in vocab.values():
            vocab[f"<extra_{i}>"] = i
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    made = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    made.add_special_tokens({"additional_special_tokens": list(special)})
    return made


def _rename_tower(folder: Path) -> None:
    """transformers 5 writes `vision_tower.embeddings.*`; vLLM 0.32 reads `vision_tower.vision_model.*`."""
    from safetensors.torch import load_file, save_file

    renamed = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors = load_file(shard)
        tensors = {re.sub(r"^((model\.)?vision_tower\.)(?!vision_model\.)", r"\1vision_model.", k): v for k, v in tensors.items()}
        save_file(tensors, shard, metadata={"format": "pt"})
        renamed |= {k: shard.name for k in tensors}
    index = folder / "model.safetensors.index.json"
    if index.exists():
        index.write_text(json.dumps({"metadata": {}, "weight_map": renamed}))


def _wide_heads(model_type: str):
    """The tiny config with 32-wide attention heads in the LLM: vLLM's CPU attention has no kernel for 8."""
    made = config(model_type)
    text = made.text_config
    text.hidden_size, text.intermediate_size, text.num_attention_heads, text.num_key_value_heads, text.head_dim = 64, 128, 2, 1, 32
    if model_type != "llava":  # the merger writes the LLM's width; M-RoPE's sections cover half a head
        setattr(made.vision_config, "hidden_size" if model_type == "qwen2_vl" else "out_hidden_size", 64)
        text.rope_parameters = dict(text.rope_parameters or {}, mrope_section=[4, 6, 6])
    return made


def save_for_vllm(model_type: str, folder: Path):
    """A tiny folder of `model_type` (llava, qwen2_vl, qwen2_5_vl, qwen3_vl) with tokenizer and processor."""
    from transformers import AutoImageProcessor, LlavaProcessor

    model = save_model(model_type, folder, made=_wide_heads(model_type))
    processor = AutoImageProcessor.from_pretrained(folder)
    if model_type == "llava":
        words = tokenizer({"<image>": 100}, 128)
        made = LlavaProcessor(image_processor=processor, tokenizer=words, patch_size=7, vision_feature_select_strategy="default", image_token="<image>")
        made.save_pretrained(folder)
        _rename_tower(folder)
    else:
        words = tokenizer({"<|vision_start|>": 150, "<|image_pad|>": 151, "<|video_pad|>": 152, "<|vision_end|>": 153}, 160)
        words.save_pretrained(folder)  # vLLM's environment assembles the processor (its video half needs torchvision here)
        (folder / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen3VLProcessor" if model_type == "qwen3_vl" else "Qwen2VLProcessor"}))
        if model_type == "qwen3_vl":  # its video processor at the tiny size (written as JSON: the class needs torchvision)
            (folder / "video_preprocessor_config.json").write_text(json.dumps(QWEN3_VIDEO))
        config = json.loads((folder / "config.json").read_text())
        config["vision_end_token_id"] = 153
        (folder / "config.json").write_text(json.dumps(config, indent=2))
    return model


PROMPTS = {  # the placeholders the processors expand into the image's tokens
    "llava": "w1 w2 <image> w3 w4",
    "qwen2_vl": "w1 w2 <|vision_start|><|image_pad|><|vision_end|> w3 w4",
    "qwen2_5_vl": "w1 w2 <|vision_start|><|image_pad|><|vision_end|> w3 w4",
    "qwen3_vl": "w1 w2 <|vision_start|><|image_pad|><|vision_end|> w3 w4",
}
VIDEO_PROMPTS = {model_type: "w1 w2 <|vision_start|><|video_pad|><|vision_end|> w3 w4" for model_type in ("qwen2_5_vl", "qwen3_vl")}
QWEN3_VIDEO = {  # Qwen3-VL's video processor, frames resized within 2..16 merged 32-pixel blocks, taken as given
    "video_processor_type": "Qwen3VLVideoProcessor",
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "size": {"shortest_edge": 32 * 32 * 2, "longest_edge": 32 * 32 * 16},
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "do_sample_frames": False,
    "fps": 2,
}
