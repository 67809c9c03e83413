"""Every family mmexport reads, from a tiny random folder saved in bf16 as releases are: the
connector graph and the whole vision side, exported in fp32 through the CLI, fed what the
model's own processor returns for real photos (1 and 3 images, crops with padding, tiles), match
transformers; attached inside the model they keep its logits and greedy tokens, and the module
they replace never runs again."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import tiered
from hf_models import MODEL_TYPES, image_features, image_inputs, prompt

import mmexport
from mmexport.hf import family
from mmexport.hf.side import image_owner

ALL = (*MODEL_TYPES, "llava_layers")  # llava_layers: LLaVA with a list of vision_feature_layer
FAST = {"llava", "qwen2_5_vl", "idefics3"}
NO_ATTACH = {"llama4": "transformers 5.24's own forward fails", "llava_next": "anyres packing in get_image_features", "llava_onevision": "same"}
TOWERS = ("vision_tower", "vision_model", "visual")


class VisionSides(dict):
    """Each folder's vision side, exported once (by the CLI test when it ran first) for the tests that only use it."""

    def __init__(self, folders, tmp_path_factory):
        super().__init__()
        self.folders, self.factory = folders, tmp_path_factory

    def __call__(self, model_type: str):
        if model_type not in self:
            out = self.factory.mktemp(f"{model_type.replace('-', '')}-vision") / "v.onnx"
            mmexport.make(model=self.folders(model_type)[0], vision_tower=True, output=out)
            self[model_type] = out
        return self[model_type]


@pytest.fixture(scope="module")
def vision_sides(folders, tmp_path_factory):
    return VisionSides(folders, tmp_path_factory)


def assert_close(actual: np.ndarray, expected: torch.Tensor, rel: float = 1e-4, cos: float = 0.99999) -> None:
    expected_np = expected.detach().double().numpy().reshape(actual.shape)
    error = np.abs(actual - expected_np).max() / np.abs(expected_np).max()
    cosine = float(actual.ravel() @ expected_np.ravel() / (np.linalg.norm(actual) * np.linalg.norm(expected_np)))
    assert error <= rel and cosine >= cos, (error, cosine)


def feeds_for(runtime, model, inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """What the processor returned, by the artifact's input names (LLaVA-NeXT: the tiles
    transformers keeps of them, which its graph takes one per row)."""
    feeds = {s.name: inputs[s.name] for s in runtime.inputs}
    if runtime.record.model["model_type"] in ("llava_next", "llava_onevision"):
        seen = []
        hook = model.model.vision_tower.register_forward_pre_hook(
            lambda m, args, kwargs: seen.append(kwargs.get("pixel_values", args[0] if args else None)), with_kwargs=True
        )
        image_features(model, inputs)
        hook.remove()
        feeds["pixel_values"] = seen[0]
    return {s.name: feeds[s.name].numpy().astype(s.dtype) for s in runtime.inputs}


def expected_features(model, model_type, inputs):
    items, deepstack = image_features(model, inputs)
    if model_type in ("llava_next", "llava_onevision"):  # the graph gives each tile's projected tokens, before packing
        seen = []
        hook = model.model.multi_modal_projector.register_forward_hook(lambda m, a, out: seen.append(out))
        image_features(model, inputs)
        hook.remove()
        return [seen[0]], []
    return items, deepstack


def poison(modules) -> None:
    """Make modules raise if they are ever called again."""

    def refuse(name: str):
        def forward(*args, **kwargs):
            raise AssertionError(f"{name} ran after attach")

        return forward

    for module in modules:
        module.forward = refuse(type(module).__name__)


def check_attached(model, attached, inputs) -> None:
    with torch.no_grad():
        expected, actual = model(**inputs).logits, attached(**inputs).logits
    assert_close(actual.numpy(), expected)
    if hasattr(model, "generate"):  # ShieldGemma 2 classifies: its logits are the answer
        tokens = [m.generate(**inputs, max_new_tokens=4, do_sample=False) for m in (model, attached)]
        assert torch.equal(tokens[0], tokens[1])


@pytest.mark.parametrize("model_type", tiered(ALL, fast=FAST))
def test_vision_side_matches_transformers(cli, folders, vision_sides, tmp_path, model_type):
    folder, model = folders(model_type)
    out = tmp_path / "v.onnx"
    result = cli("onnx", "--model", folder, "--vision-tower", "-o", out, "--json")
    assert result.code == 0, result
    vision_sides[model_type] = out
    record = json.loads(result.stdout)
    assert record["model"]["vision_tower"] is True and record["inputs"][0]["name"] == "pixel_values"
    assert len(record["parity"]["rows"]) >= 3 and record["parity"]["passed"]
    runtime = mmexport.load(out)
    for images in (1, 3):
        inputs = image_inputs(model_type, images, seed=images)
        produced = runtime(**feeds_for(runtime, model, inputs))
        items, deepstack = expected_features(model, model_type, inputs)
        rows = [i.reshape(-1, i.shape[-1]) for i in items]
        assert_close(produced[runtime.outputs[0].name].reshape(-1, rows[0].shape[-1]), torch.cat(rows))
        for spec, level in zip(runtime.outputs[1:], deepstack):  # Qwen3-VL's deepstack features
            assert_close(produced[spec.name], level)
    if model_type in NO_ATTACH:
        return
    inputs = image_inputs(model_type, 2) | prompt(model_type, model, image_inputs(model_type, 2))
    attached = mmexport.attach(copy.deepcopy(model), out)
    owner = image_owner(attached)
    poison(
        m
        for name in TOWERS
        for m in (getattr(owner, name, None), getattr(attached, name, None))
        if isinstance(m, torch.nn.Module) and "Through" not in type(m).__name__
    )
    check_attached(model, attached, inputs)
    assert owner.mmexport_vision_side.calls >= (2 if hasattr(model, "generate") else 1)  # the forward and generate's prefill


def connector_io(model, model_type, inputs):
    """The connector module's inputs and output in transformers' own forward."""
    declared = family(model.config.model_type)
    if declared.connector_module is not None:  # BLIP-2: query tokens, Q-Former, projection
        module = model.qformer
        seen: dict = {}
        hooks = [model.language_projection.register_forward_hook(lambda m, a, out: seen.update(output=out))]
        feeds = declared.connector_inputs(model, inputs)
    else:
        name = declared.connector
        module = next(m for n, m in model.named_modules() if n == name or n.endswith("." + name))
        seen = {}
        hooks = [module.register_forward_hook(lambda m, args, kwargs, out: seen.update(args=args, kwargs=kwargs, output=out), with_kwargs=True)]
        feeds = None
    try:
        expected_features(model, model_type, inputs)
    finally:
        for hook in hooks:
            hook.remove()
    if feeds is None:
        import inspect

        names = [p for p in inspect.signature(module.forward).parameters if p not in ("self", "kwargs")]
        feeds = dict(zip(names, seen["args"])) | {k: v for k, v in seen["kwargs"].items() if isinstance(v, torch.Tensor)}
    return module, feeds, seen["output"]


@pytest.mark.parametrize("model_type", tiered([m for m in ALL if m != "mistral3"], fast={"llava", "qwen2_vl", "blip-2"}))
def test_connector_matches_transformers(cli, folders, tmp_path, model_type):
    folder, model = folders(model_type)
    out = tmp_path / "c.onnx"
    result = cli("onnx", "--model", folder, "-o", out, "--json")
    assert result.code == 0, result
    assert json.loads(result.stdout)["model"]["part"] == "connector"
    runtime = mmexport.load(out)
    module, feeds, output = connector_io(model, model_type, image_inputs(model_type, 3))
    arrays = {s.name: feeds[s.name].detach().float().numpy().astype(s.dtype) for s in runtime.inputs}
    assert_close(runtime(**arrays)["llm_embeds"], output)
    if model_type == "llama4":  # its forward fails in transformers 5.24
        return
    inputs = image_inputs(model_type, 2) | prompt(model_type, model, image_inputs(model_type, 2))
    attached = mmexport.attach(copy.deepcopy(model), out)
    replaced = [m for m in attached.modules() if type(m).__name__ in ("ConnectorStandIn", "QFormerStandIn")]
    assert len(replaced) == 1
    check_attached(model, attached, inputs)
    assert replaced[0].artifact.calls >= (2 if hasattr(model, "generate") else 1)


def test_mistral3_has_no_connector_graph(cli, folders, tmp_path):
    from conftest import assert_one_line

    folder, _ = folders("mistral3")
    assert_one_line(cli("onnx", "--model", folder, "-o", tmp_path / "c.onnx"), 2, "no connector-only export", "--vision-tower")


@pytest.mark.parametrize("model_type", tiered([m for m in ALL if m not in NO_ATTACH], fast={"qwen3_vl", "mllama"}))
def test_encoder_outputs_in_transformers_forward(folders, vision_sides, model_type):
    """mmexport.encoder_outputs gives what the forward takes instead of pixel_values
    (mm_encoder_outputs; Llama 3.2 Vision: cross_attention_states): the same logits."""
    _, model = folders(model_type)
    images = image_inputs(model_type, 2)
    text = prompt(model_type, model, images)
    given = mmexport.encoder_outputs(vision_sides(model_type), **images)
    with torch.no_grad():
        expected = model(**images, **text).logits
        assert_close(model(**text, **given).logits.numpy(), expected)
        if "mm_encoder_outputs" in given:  # the features matter: perturbed, the logits move
            item = given["mm_encoder_outputs"]["image"]
            item.pooler_output = [p * 1.5 for p in item.pooler_output] if isinstance(item.pooler_output, (list, tuple)) else item.pooler_output * 1.5
            assert not np.allclose(model(**text, **given).logits.numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["gemma3", "smolvlm", "qwen3_vl", "glm4v", "mistral3"])
def test_fp16_vision_side_builds_an_engine(cli, vision_sides, tmp_path, model_type):
    """The fp16 vision side passes check and TensorRT-RTX builds it for sm89 (no GPU needed)."""
    assert cli("quantize", vision_sides(model_type), "--precision", "fp16", "-o", tmp_path / "v.fp16.onnx").code == 0
    assert cli("check", tmp_path / "v.fp16.onnx").code == 0
    built = cli("trt", tmp_path / "v.fp16.onnx", "--flavor", "tensorrt-rtx", "--arch", "sm89", "-o", tmp_path / "v.engine")
    assert built.code == 0, built
