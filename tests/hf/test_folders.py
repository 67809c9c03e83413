"""From a Hugging Face folder: `mmexport onnx --model DIR` detects the connector from config.json,
and the graph, fed the tensor that feeds the connector in transformers, returns what
get_image_features hands the LLM. `mmexport.attach` puts the artifact inside the model."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from support.checks import assert_close
from support.cli import assert_one_line
from support.families import image_inputs, save_model
from support.tiers import uses

from mmexport.samples import photos

pytestmark = uses("llava")


def test_hub_layout_folder_loads_as_transformers_loads_it(cli, tiny_models, tmp_path):
    """A folder in the hub's older key layout (vision_tower.vision_model.*, language_model.model.*,
    top-level multi_modal_projector.*): transformers' own checkpoint mapping finds the tensors."""
    from safetensors.torch import load_file, save_file

    folder, model = tiny_models("llava")
    hub = tmp_path / "hub"
    hub.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (hub / name).write_bytes((folder / name).read_bytes())
    state = {}
    for shard in folder.glob("*.safetensors"):
        state |= load_file(shard)
    renamed = {}
    for key, value in state.items():
        key = key.replace("model.vision_tower.", "vision_tower.vision_model.").replace("model.multi_modal_projector.", "multi_modal_projector.")
        renamed[key.replace("model.language_model.", "language_model.model.")] = value
    save_file(renamed, hub / "model.safetensors")
    assert not any(k.startswith("model.") for k in renamed)
    out = tmp_path / "v.onnx"
    assert cli("onnx", "--model", hub, "--vision-tower", "-o", out).code == 0
    inputs = image_inputs("llava", 2)
    with torch.no_grad():
        expected = torch.stack(list(model.model.get_image_features(**inputs).pooler_output))
    import mmexport

    assert_close(mmexport.load(out)(pixel_values=inputs["pixel_values"].numpy())["image_embeds"], expected)


def test_unknown_model_type_is_one_line(cli, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "fuyu"}))
    assert_one_line(
        cli("onnx", "--model", tmp_path, "-o", tmp_path / "x.onnx"),
        2,
        "model_type 'fuyu' has no declaration",
        "no preprocessor_config.json",
        "declare its family",
    )
    assert_one_line(cli("onnx", "--model", tmp_path / "absent", "-o", tmp_path / "x.onnx"), 2, "no config.json")
    assert_one_line(cli("onnx", "--model", tmp_path, "-c", "mlp"), 2, "one of them")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


@pytest.mark.slow  # over 10 s on 2 cores: the full suite (CI) runs it, the fast tier stays under 4 min
def test_attach_refuses_an_artifact_of_another_model(cli, tiny_models, tmp_path):
    import mmexport
    from mmexport.errors import UsageError

    llava_folder, llava = tiny_models("llava")
    blip_folder, _ = tiny_models("blip-2")
    assert cli("onnx", "--model", blip_folder, "-o", tmp_path / "blip.onnx").code == 0
    with pytest.raises(UsageError, match="'blip-2' model; this one is 'llava'"):
        mmexport.attach(copy.deepcopy(llava), tmp_path / "blip.onnx")
    other = save_model("llava", tmp_path / "other", seed=5)  # same dims, other weights
    assert cli("onnx", "--model", tmp_path / "other", "-o", tmp_path / "other.onnx").code == 0
    with pytest.raises(UsageError, match="other weights than this model's connector"):
        mmexport.attach(copy.deepcopy(llava), tmp_path / "other.onnx")
    assert cli("onnx", "--model", tmp_path / "other", "--vision-tower", "-o", tmp_path / "other-v.onnx").code == 0
    with pytest.raises(UsageError, match="other weights than this model's vision side"):
        mmexport.attach(copy.deepcopy(llava), tmp_path / "other-v.onnx")
    assert cli("onnx", "-c", "mlp", "-o", tmp_path / "plain.onnx", "--preset", "llava-1.5-7b", "--no-check").code == 0
    with pytest.raises(UsageError, match="not exported from a Hugging Face folder"):
        mmexport.attach(other, tmp_path / "plain.onnx")


def test_attach_with_several_images_per_prompt(cli, tiny_models, tmp_path):
    """LLaVA, a batch of two prompts: the first holds two images, the second one (left-padded)."""
    import mmexport

    folder, model = tiny_models("llava")
    assert cli("onnx", "--model", folder, "-o", tmp_path / "c.onnx").code == 0
    image, pad = model.config.image_token_id, 0
    text = torch.randint(1, 90, (2, 5), generator=torch.Generator().manual_seed(4))
    first = torch.cat([torch.full((16,), image), text[0, :2], torch.full((16,), image), text[0, 2:]])
    second = torch.cat([torch.full((16,), pad), torch.full((16,), image), text[1]])
    ids = torch.stack([first, second])
    mask = torch.ones_like(ids)
    mask[1, :16] = 0
    inputs = {"input_ids": ids, "attention_mask": mask, "pixel_values": image_inputs("llava", images=3)["pixel_values"]}
    attached = mmexport.attach(copy.deepcopy(model), tmp_path / "c.onnx")
    with torch.no_grad():
        assert_close(attached(**inputs).logits.numpy(), model(**inputs).logits)
    tokens = [m.generate(**inputs, max_new_tokens=4, do_sample=False) for m in (model, attached)]
    assert torch.equal(tokens[0], tokens[1])


@pytest.mark.parametrize("case", ["idefics3", "smolvlm"])
def test_pixel_values_alone_as_transformers_allows(tiny_models, artifacts, case):
    """transformers' signature makes pixel_attention_mask optional (all ones when not given):
    the artifact and the attached model take pixel_values alone, as the original does."""
    from support.families import prompt

    import mmexport

    _, model = tiny_models(case)
    inputs = image_inputs(case, 2)
    runtime = mmexport.load(artifacts(case, "vision"))
    assert next(s for s in runtime.inputs if s.name == "pixel_attention_mask").optional
    with torch.no_grad():
        expected = torch.cat(list(model.model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output))
    assert_close(runtime(pixel_values=inputs["pixel_values"].numpy())["image_embeds"], expected)
    text = prompt(model, case, inputs)
    attached = mmexport.attach(copy.deepcopy(model), artifacts(case, "vision"))
    with torch.no_grad():
        assert_close(attached(**text, pixel_values=inputs["pixel_values"]).logits.numpy(), model(**text, pixel_values=inputs["pixel_values"]).logits)


@pytest.mark.parametrize("image_size", [12, 24])
def test_transformers_own_test_configs_export(cli, tmp_path, image_size):
    """Idefics2 as transformers' own tests configure it (one-patch crops of 12 px, or 24 px): the
    gate's samples are valid inputs for any valid config, and the artifact matches transformers."""
    import transformers
    from support.families import TINY, save_model

    import mmexport

    vision = dict(image_size=image_size, patch_size=12, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32)
    perceiver = dict(hidden_act="silu", resampler_n_latents=2, resampler_depth=2, resampler_n_heads=2, num_key_value_heads=1, resampler_head_dim=12)
    text = dict(vocab_size=100, hidden_size=64, intermediate_size=56, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2, model_type="mistral")
    config = transformers.Idefics2Config(vision_config=vision, perceiver_config=perceiver, text_config=text, image_token_id=99)
    model = save_model("idefics2", tmp_path / "model", made=config)
    processor = transformers.Idefics2ImageProcessor(size={"shortest_edge": image_size, "longest_edge": image_size}, do_image_splitting=False)
    processor.save_pretrained(tmp_path / "model")
    assert TINY["idefics2"].model_type == "idefics2"
    result = cli("onnx", "--model", tmp_path / "model", "--vision-tower", "-o", tmp_path / "v.onnx")
    assert result.code == 0, result
    inputs = {k: v for k, v in processor(images=[[p] for p in photos(2)], return_tensors="pt").items() if k in ("pixel_values", "pixel_attention_mask")}
    with torch.no_grad():
        expected = torch.cat(list(model.model.get_image_features(**inputs).pooler_output))
    produced = mmexport.load(tmp_path / "v.onnx")(**{k: v.numpy() for k, v in inputs.items()})["image_embeds"]
    assert_close(produced, expected)
