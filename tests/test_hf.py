"""From a Hugging Face folder: `mmexport onnx --model DIR` detects the connector from config.json,
and the graph, fed the tensor that feeds the connector in transformers, returns what
get_image_features hands the LLM. `mmexport.attach` puts the artifact inside the model."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import assert_one_line, tiered
from hf_models import CLIP_L_336, MODEL_TYPES, image_inputs, save_model

CONNECTOR_MODULE = {  # the module transformers calls with the connector's input
    "llava": "multi_modal_projector",
    "llava_next": "multi_modal_projector",
    "llava_onevision": "multi_modal_projector",
    "paligemma": "multi_modal_projector",
    "blip-2": "qformer",
    "instructblip": "qformer",
    "idefics2": "connector",
    "qwen2_vl": "merger",
    "qwen2_5_vl": "merger",
    "internvl": "multi_modal_projector",
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    made: dict[str, tuple] = {}

    def get(model_type: str):
        if model_type not in made:
            folder = tmp_path_factory.mktemp(model_type.replace("-", ""))
            made[model_type] = (folder, save_model(model_type, folder))
        return made[model_type]

    return get


def module_named(model, suffix):
    return next(m for n, m in model.named_modules() if n == suffix or n.endswith("." + suffix))


def connector_io(model_type, model, inputs):
    """(feeds for the graph, the connector's output, get_image_features' pooler_output), captured
    from transformers' own forward."""
    seen: dict = {}
    hook = module_named(model, CONNECTOR_MODULE[model_type]).register_forward_hook(
        lambda module, args, kwargs, output: seen.update(args=args, kwargs=kwargs, output=output), with_kwargs=True
    )
    inner = model.model if hasattr(model, "model") else model
    if model_type == "internvl":  # the graph takes the tokens before transformers' pixel shuffle
        shuffle = inner.pixel_shuffle
        inner.pixel_shuffle = lambda x, scale_factor=0.5: seen.setdefault("unshuffled", x.flatten(1, 2)) is not None and shuffle(x, scale_factor)
    try:
        with torch.no_grad():
            pooler = inner.get_image_features(**inputs).pooler_output
    finally:
        hook.remove()
        inner.__dict__.pop("pixel_shuffle", None)
    args, kwargs = seen["args"], seen["kwargs"]
    if model_type in ("blip-2", "instructblip"):
        feeds = {"vision_features": kwargs["encoder_hidden_states"]}
        if model_type == "instructblip":
            queries = kwargs["query_embeds"].shape[1]
            feeds |= {"qformer_input_ids": kwargs["input_ids"], "qformer_attention_mask": kwargs["attention_mask"][:, queries:]}
        output = pooler
    elif model_type == "idefics2":
        feeds = {"image_hidden_states": args[0], "patch_attention_mask": kwargs["attention_mask"].bool()}
        output = seen["output"]
    elif model_type == "internvl":
        feeds, output = {"vision_features": seen["unshuffled"]}, seen["output"]
    else:
        feeds, output = {"vision_features": args[0]}, seen["output"]
    return {k: v.detach().numpy() for k, v in feeds.items()}, output, pooler


def assert_close(actual: np.ndarray, expected: torch.Tensor) -> None:
    expected = expected.detach().double().numpy().reshape(actual.shape)
    rel = np.abs(actual - expected).max() / np.abs(expected).max()
    cos = float(actual.ravel() @ expected.ravel() / (np.linalg.norm(actual) * np.linalg.norm(expected)))
    assert rel <= 1e-4 and cos >= 0.99999, (rel, cos)


@pytest.mark.parametrize("model_type", tiered(MODEL_TYPES, fast={"llava", "blip-2", "qwen2_vl"}))
def test_export_from_a_model_folder_matches_transformers(cli, folders, tmp_path, model_type):
    folder, model = folders(model_type)
    out = tmp_path / "c.onnx"
    result = cli("onnx", "--model", folder, "-o", out, "--json")
    assert result.code == 0, result
    record = json.loads(result.stdout)
    assert record["model"]["model_type"] == model_type and record["model"]["feeds"]
    feeds, output, pooler = connector_io(model_type, model, image_inputs(model_type))
    actual = ort.InferenceSession(str(out)).run(None, feeds)[0]
    assert_close(actual, output)
    if model_type not in ("llava_next", "llava_onevision", "qwen2_5_vl"):  # those reorder or pad after the connector
        assert_close(actual, torch.cat([p.reshape(-1, p.shape[-1]) for p in pooler]) if isinstance(pooler, (list, tuple)) else pooler)


@pytest.mark.slow
def test_release_size_configs_resolve_to_the_presets(tmp_path):
    """config.json at released dims, only the connector's tensors in two shards: the same dims
    as the presets (a released folder's other tensors are never read)."""
    from safetensors.torch import save_file
    from transformers import Blip2Config, LlavaConfig, Qwen2VLConfig

    from mmexport import connectors
    from mmexport.connectors.loading import build_module
    from mmexport.reference import from_model

    configs = {
        ("mlp", "llava-1.5-7b"): LlavaConfig(
            vision_config=CLIP_L_336,
            text_config=dict(model_type="llama", hidden_size=4096),
        ),
        ("qformer", "blip2-opt-2.7b"): Blip2Config(text_config=dict(model_type="opt", hidden_size=2560, word_embed_proj_dim=2560)),
        ("patch-merger", "qwen2-vl-7b"): Qwen2VLConfig(vision_config=dict(embed_dim=1280, hidden_size=3584), text_config=dict(hidden_size=3584)),
    }
    for (name, preset), hf_config in configs.items():
        connector = connectors.get(name)
        folder = tmp_path / preset
        folder.mkdir()
        hf_config.save_pretrained(folder)
        state = build_module(connector, connector.preset(preset)).state_dict()
        prefix = {"mlp": "model.multi_modal_projector.", "qformer": "", "patch-merger": "model.visual.merger."}[name]
        keys = sorted(state)
        shards = {f"model-0000{i + 1}-of-00002.safetensors": keys[i::2] for i in range(2)}
        for shard, names in shards.items():
            save_file({prefix + k: state[k].contiguous() for k in names} | {f"lm_head.{shard[:11]}": torch.zeros(1)}, folder / shard)
        weight_map = {prefix + k: shard for shard, names in shards.items() for k in names}
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
        reference = from_model(folder)
        assert reference.connector.name == name
        tokens = {"qformer": 257, "mlp": 576, "patch-merger": 1024}[name]
        assert reference.config == connector.preset(preset), (reference.config, connector.preset(preset))
        assert reference.config.tokens == tokens


def test_unknown_model_type_is_one_line(cli, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "fuyu"}))
    assert_one_line(cli("onnx", "--model", tmp_path, "-o", tmp_path / "x.onnx"), 2, "model_type 'fuyu' is not supported", "llava", "qwen2_vl")
    assert_one_line(cli("onnx", "--model", tmp_path / "absent", "-o", tmp_path / "x.onnx"), 2, "no config.json")
    assert_one_line(cli("onnx", "--model", tmp_path, "-c", "mlp"), 2, "one of them")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def prompt(model_type, model, images):
    """input_ids (image tokens where the model wants them) for a batch of one image per sample."""
    config = model.config
    image_token = getattr(config, "image_token_id", None) or config.image_token_index
    count = 16  # patches per image (llava: CLS dropped; paligemma: SigLIP)
    if model_type in ("blip-2", "instructblip"):
        count = config.num_query_tokens
    elif model_type == "idefics2":
        count = config.perceiver_config.resampler_n_latents
    elif model_type == "internvl":
        count = 4  # 16 patches, pixel-shuffled
    text = torch.randint(1, 90, (images, 6), generator=torch.Generator().manual_seed(3))
    ids = torch.cat([torch.full((images, count), image_token), text], dim=1)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.mark.parametrize("model_type", tiered(["llava", "blip-2", "paligemma", "instructblip", "idefics2", "internvl"], fast={"llava", "blip-2"}))
def test_attach_keeps_logits_and_greedy_tokens(cli, folders, tmp_path, model_type):
    import mmexport

    folder, model = folders(model_type)
    assert cli("onnx", "--model", folder, "-o", tmp_path / "c.onnx").code == 0
    inputs = image_inputs(model_type, images=2) | prompt(model_type, model, 2)
    attached = mmexport.attach(copy.deepcopy(model), tmp_path / "c.onnx")
    with torch.no_grad():
        expected, actual = model(**inputs).logits, attached(**inputs).logits
    assert_close(actual.numpy(), expected)
    tokens = [m.generate(**inputs, max_new_tokens=4, do_sample=False) for m in (model, attached)]
    assert torch.equal(tokens[0], tokens[1])
    from mmexport.hf.base import ArtifactModule

    artifact_modules = [m for m in attached.modules() if isinstance(m, ArtifactModule)]
    assert len(artifact_modules) == 1 and artifact_modules[0].calls >= 2  # the forward and generate's prefill ran it


def test_attach_refuses_an_artifact_of_another_model(cli, folders, tmp_path):
    import mmexport
    from mmexport.errors import UsageError

    llava_folder, llava = folders("llava")
    blip_folder, _ = folders("blip-2")
    assert cli("onnx", "--model", blip_folder, "-o", tmp_path / "blip.onnx").code == 0
    with pytest.raises(UsageError, match="'blip-2' model; this one is 'llava'"):
        mmexport.attach(copy.deepcopy(llava), tmp_path / "blip.onnx")
    other = save_model("llava", tmp_path / "other", seed=5)  # same dims, other weights
    assert cli("onnx", "--model", tmp_path / "other", "-o", tmp_path / "other.onnx").code == 0
    with pytest.raises(UsageError, match="other connector weights"):
        mmexport.attach(copy.deepcopy(llava), tmp_path / "other.onnx")
    assert cli("onnx", "-c", "mlp", "-o", tmp_path / "plain.onnx", "--preset", "llava-1.5-7b", "--no-check").code == 0
    with pytest.raises(UsageError, match="not exported from a Hugging Face folder"):
        mmexport.attach(other, tmp_path / "plain.onnx")


def test_attach_with_several_images_per_prompt(cli, folders, tmp_path):
    """LLaVA, a batch of two prompts: the first holds two images, the second one (left-padded)."""
    import mmexport

    folder, model = folders("llava")
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
