"""A family from outside mmexport: a remote-code-style VLM that transformers does not ship (its
config and model classes defined here and registered with transformers' auto classes, as
trust_remote_code loads them), declared to mmexport in this module (FAMILY), found through
MMEXPORT_FAMILIES (so a server process finds it too), and taken through export, the gate against
its own get_image_features, attach and the encoder service."""

from __future__ import annotations

import copy
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from support.checks import assert_close
from support.tiers import uses
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling

import mmexport
from mmexport.hf import Family
from mmexport.samples import photos, png

pytestmark = uses("external")
IMAGE_TOKEN = 100


class ToyVlmConfig(PretrainedConfig):
    model_type = "toy_vlm"
    sub_configs = {"vision_config": SiglipVisionConfig, "text_config": LlamaConfig}

    def __init__(self, vision_config=None, text_config=None, image_token_id=IMAGE_TOKEN, **kwargs):
        self.vision_config = SiglipVisionConfig(**(vision_config or {})) if not isinstance(vision_config, SiglipVisionConfig) else vision_config
        self.text_config = LlamaConfig(**(text_config or {})) if not isinstance(text_config, LlamaConfig) else text_config
        self.image_token_id = image_token_id
        super().__init__(**kwargs)


class ToyVlmForConditionalGeneration(PreTrainedModel):
    """A SigLIP tower, a two-layer projector and a Llama: image features replace the image tokens."""

    config_class = ToyVlmConfig
    base_model_prefix = ""

    def __init__(self, config: ToyVlmConfig):
        super().__init__(config)
        width = config.text_config.hidden_size
        self.vision_tower = SiglipVisionModel(config.vision_config)
        self.multi_modal_projector = nn.Sequential(nn.Linear(config.vision_config.hidden_size, width), nn.GELU(), nn.Linear(width, width))
        self.language_model = LlamaForCausalLM(config.text_config)
        self.post_init()

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        states = self.vision_tower(pixel_values=pixel_values).last_hidden_state
        return BaseModelOutputWithPooling(last_hidden_state=states, pooler_output=self.multi_modal_projector(states))

    def forward(self, input_ids, pixel_values=None, attention_mask=None, **kwargs):
        embeds = self.language_model.get_input_embeddings()(input_ids)
        if pixel_values is not None:
            features = self.get_image_features(pixel_values=pixel_values).pooler_output
            embeds = embeds.masked_scatter((input_ids == self.config.image_token_id)[..., None], features.reshape(-1, embeds.shape[-1]).to(embeds.dtype))
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)


AutoConfig.register("toy_vlm", ToyVlmConfig, exist_ok=True)
AutoModelForImageTextToText.register(ToyVlmConfig, ToyVlmForConditionalGeneration, exist_ok=True)

# The whole declaration: where the vision parts sit (the defaults: pixel_values in, image_embeds out).
FAMILY = Family(("toy_vlm",), parts=("vision_tower", "multi_modal_projector"), connector=("multi_modal_projector",))


@pytest.fixture(scope="module")
def plugin():
    """MMEXPORT_FAMILIES names this module: the registry (here and in a server process) reads FAMILY."""
    from mmexport.hf import REGISTRY

    here = Path(__file__).resolve().parent
    saved = {k: os.environ.get(k) for k in ("MMEXPORT_FAMILIES", "PYTHONPATH")}
    os.environ["MMEXPORT_FAMILIES"] = "test_external_family:FAMILY"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parent), *filter(None, [saved["PYTHONPATH"]])])
    REGISTRY._found = None  # read again, with the plug-in
    yield
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    REGISTRY._found = None


@pytest.fixture(scope="module")
def toy(plugin, tmp_path_factory):
    vision = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=28, patch_size=7)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
    torch.manual_seed(0)
    model = ToyVlmForConditionalGeneration(ToyVlmConfig(vision, text)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    folder = tmp_path_factory.mktemp("toy") / "toy_vlm"
    model.to(torch.bfloat16).save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": 28, "width": 28}).save_pretrained(folder)
    return folder, ToyVlmForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()


def test_a_users_family_through_every_stage(cli, toy, tmp_path):
    folder, model = toy
    result = cli("onnx", "--model", folder, "--vision-tower", "-o", tmp_path / "v.onnx")
    assert result.code == 0 and "warning" not in result.stderr, result  # declared: transformers' path is the gate's reference
    assert cli("onnx", "--model", folder, "-o", tmp_path / "c.onnx").code == 0  # its connector alone too
    pixels = SiglipImageProcessorPil.from_pretrained(folder)(images=photos(2), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model.get_image_features(pixel_values=pixels).pooler_output
    assert_close(mmexport.load(tmp_path / "v.onnx")(pixel_values=pixels.numpy())["image_embeds"], expected)
    ids = torch.cat([torch.tensor([1, 5]), torch.full((2 * expected.shape[1],), IMAGE_TOKEN), torch.tensor([7, 9])])[None]
    attached = mmexport.attach(copy.deepcopy(model), tmp_path / "v.onnx")
    attached.vision_tower.forward = _refuse
    with torch.no_grad():
        assert_close(attached(ids, pixel_values=pixels).logits.numpy(), model(ids, pixel_values=pixels).logits)


def _refuse(*args, **kwargs):
    raise AssertionError("the tower ran after attach")


@pytest.mark.slow
def test_a_users_family_in_the_encoder_service(toy, tmp_path):
    """`mmexport serve` in its own process finds the family through MMEXPORT_FAMILIES."""
    from mmexport.client import embeddings
    from mmexport.serving.launch import start_service

    folder, model = toy
    mmexport.make(model=folder, vision_tower=True, output=tmp_path / "v.onnx")
    proc, url = start_service(tmp_path / "v.onnx", folder)
    try:
        pictures = photos(2)
        got = embeddings(url, [png(p) for p in pictures])
        pixels = SiglipImageProcessorPil.from_pretrained(folder)(images=pictures, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            expected = model.get_image_features(pixel_values=pixels).pooler_output
        assert np.abs(np.asarray(got) - expected.numpy()).max() <= 1e-4 * float(expected.abs().max())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
