"""Every family in the registry, from a tiny random folder saved in bf16 as releases are (one
table, support/families.py, says what each looks like): the connector graph and the whole vision
side, exported in fp32, fed what the model's own processor returns for real photos (1 and 3
images, crops with padding, tiles), match transformers; attached inside the model they keep its
logits and greedy tokens, and the module they replace never runs again."""

from __future__ import annotations

import copy
import inspect
import json

import numpy as np
import pytest
import torch
from support.checks import assert_close
from support.cli import assert_one_line
from support.families import TINY, image_features, image_inputs, prompt
from support.tiers import tiered

import mmexport
from mmexport.errors import UsageError
from mmexport.hf import family, model_types
from mmexport.hf.model import image_owner

CASES = list(TINY)
FAST = {c for c, tiny in TINY.items() if tiny.fast}
TOWERS = ("vision_tower", "vision_model", "visual")


def declared(case: str):
    found = family(TINY[case].model_type)
    assert found is not None
    return found


def test_every_family_has_a_tiny_model():
    """The registry and the test table agree: a family added without its tiny model fails here."""
    assert set(model_types()) <= {tiny.model_type for tiny in TINY.values()}


def feeds_for(runtime, model, case: str, inputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """What the processor returned, by the artifact's input names (LLaVA-NeXT: the tiles
    transformers keeps of them, which its graph takes one per row)."""
    feeds = {s.name: inputs[s.name] for s in runtime.inputs if s.name in inputs}
    if declared(case).attach_why_not:  # tiles packed after the graph: feed the tiles the tower sees
        seen = []
        hook = model.model.vision_tower.register_forward_pre_hook(
            lambda m, args, kwargs: seen.append(kwargs.get("pixel_values", args[0] if args else None)), with_kwargs=True
        )
        image_features(model, case, inputs)
        hook.remove()
        feeds["pixel_values"] = seen[0]
    return {name: value.numpy().astype(runtime.dtypes[name]) for name, value in feeds.items()}


def expected_features(model, case: str, inputs):
    if declared(case).attach_why_not:  # the graph gives each tile's projected tokens, before packing
        seen = []
        hook = model.model.multi_modal_projector.register_forward_hook(lambda m, a, out: seen.append(out))
        image_features(model, case, inputs)
        hook.remove()
        return [seen[0]], []
    return image_features(model, case, inputs)


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


@pytest.mark.parametrize("case", tiered(CASES, fast=FAST))
def test_vision_side_matches_transformers(cli, tiny_models, artifacts, tmp_path, case):
    folder, model = tiny_models(case)
    if case in FAST:  # through the CLI, as a user runs it; the others reuse the session's export
        result = cli("onnx", "--model", folder, "--vision-tower", "-o", tmp_path / "v.onnx", "--json")
        assert result.code == 0, result
        record = json.loads(result.stdout)
        assert record["model"]["part"] == "vision" and record["inputs"][0]["name"] == "pixel_values"
        assert len(record["parity"]["rows"]) >= 3 and record["parity"]["passed"]
        assert "warning" not in result.stderr  # nothing is wrong
    runtime = mmexport.load(artifacts(case, "vision"))
    for images in (1, 3):
        inputs = image_inputs(case, images, seed=images)
        produced = runtime(**feeds_for(runtime, model, case, inputs))
        items, deepstack = expected_features(model, case, inputs)
        rows = [i.reshape(-1, i.shape[-1]) for i in items]
        assert_close(produced[runtime.outputs[0].name].reshape(-1, rows[0].shape[-1]), torch.cat(rows))
        for spec, level in zip(runtime.outputs[1:], deepstack):  # Qwen3-VL's deepstack features
            assert_close(produced[spec.name], level)


ATTACHED = [c for c in CASES if declared(c).attach and not declared(c).attach_why_not and TINY[c].prompt != "processor"]


@pytest.mark.parametrize("case", tiered(ATTACHED, fast=FAST))
def test_attached_vision_side_replaces_the_tower(tiny_models, artifacts, case):
    _, model = tiny_models(case)
    inputs = image_inputs(case, 2) | prompt(model, case, image_inputs(case, 2))
    attached = mmexport.attach(copy.deepcopy(model), artifacts(case, "vision"))
    owner = image_owner(attached)
    towers = [m for name in TOWERS for m in (getattr(owner, name, None), getattr(attached, name, None))]
    towers += [m for name, m in attached.named_modules() if name.endswith(".img_processor")]  # Phi-4-multimodal's, inside its embedding
    poison(m for m in towers if isinstance(m, torch.nn.Module) and "Through" not in type(m).__name__)
    check_attached(model, attached, inputs)
    assert owner.mmexport_vision_side.calls >= (2 if hasattr(model, "generate") else 1)  # the forward and generate's prefill


def connector_io(model, case: str, inputs):
    """The connector module's inputs and output in transformers' own forward."""
    found = declared(case)
    if found.connector_module is not None:  # BLIP-2: query tokens, Q-Former, projection
        module = model.qformer
        seen: dict = {}
        hooks = [model.language_projection.register_forward_hook(lambda m, a, out: seen.update(output=out))]
        feeds = found.connector_inputs(model, inputs)
    else:
        name = found.connector[0]
        module = next(m for n, m in model.named_modules() if n == name or n.endswith("." + name))
        seen = {}
        hooks = [module.register_forward_hook(lambda m, args, kwargs, out: seen.update(args=args, kwargs=kwargs, output=out), with_kwargs=True)]
        feeds = None
    try:
        expected_features(model, case, inputs)
    finally:
        for hook in hooks:
            hook.remove()
    if feeds is None:
        names = [p for p in inspect.signature(module.forward).parameters if p not in ("self", "kwargs")]
        feeds = dict(zip(names, seen["args"])) | {k: v for k, v in seen["kwargs"].items() if isinstance(v, torch.Tensor)}
    return module, feeds, seen["output"]


@pytest.mark.parametrize("case", tiered([c for c in CASES if declared(c).connector], fast={"llava", "qwen2_vl", "blip-2"}))
def test_connector_matches_transformers(tiny_models, artifacts, case):
    _, model = tiny_models(case)
    out = artifacts(case, "connector")
    assert json.loads(out.with_name(out.name + ".json").read_text())["model"]["part"] == "connector"
    runtime = mmexport.load(out)
    module, feeds, output = connector_io(model, case, image_inputs(case, 3))
    arrays = {s.name: feeds[s.name].detach().float().numpy().astype(s.dtype) for s in runtime.inputs}
    assert_close(runtime(**arrays)["llm_embeds"], output)
    if not declared(case).attach:  # its forward fails in transformers 5.24
        return
    inputs = image_inputs(case, 2) | prompt(model, case, image_inputs(case, 2))
    attached = mmexport.attach(copy.deepcopy(model), out)
    replaced = [m for m in attached.modules() if type(m).__name__ in ("ConnectorStandIn", "QFormerStandIn")]
    assert len(replaced) == 1
    check_attached(model, attached, inputs)
    assert replaced[0].artifact.calls >= (2 if hasattr(model, "generate") else 1)


def test_a_family_without_a_connector_graph_says_so(cli, tiny_models, tmp_path):
    folder, _ = tiny_models("mistral3")
    assert_one_line(cli("onnx", "--model", folder, "-o", tmp_path / "c.onnx"), 2, "no connector-only export", "--vision-tower")


@pytest.mark.parametrize("case", tiered(ATTACHED, fast={"qwen3_vl", "mllama"}))
def test_encoder_outputs_in_transformers_forward(tiny_models, artifacts, case):
    """mmexport.encoder_outputs gives what the forward takes instead of pixel_values
    (mm_encoder_outputs; Llama 3.2 Vision: cross_attention_states): the same logits."""
    _, model = tiny_models(case)
    images = image_inputs(case, 2)
    if declared(case).features_as is None:  # Phi-4-multimodal's forward takes no features: attach instead
        with pytest.raises(UsageError, match="takes no precomputed image features; attach"):
            mmexport.encoder_outputs(artifacts(case, "vision"), **images)
        return
    text = prompt(model, case, images)
    given = mmexport.encoder_outputs(artifacts(case, "vision"), **images)
    with torch.no_grad():
        expected = model(**images, **text).logits
        assert_close(model(**text, **given).logits.numpy(), expected)
        if "mm_encoder_outputs" in given:  # the features matter: perturbed, the logits move
            item = given["mm_encoder_outputs"]["image"]
            item.pooler_output = [p * 1.5 for p in item.pooler_output] if isinstance(item.pooler_output, (list, tuple)) else item.pooler_output * 1.5
            assert not np.allclose(model(**text, **given).logits.numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["gemma3", "smolvlm", "qwen3_vl", "glm4v", "mistral3", "qwen3_5", "gemma4", "paddleocr_vl", "lfm2_vl"])
def test_fp16_vision_side_builds_an_engine(cli, artifacts, tmp_path, case):
    """The fp16 vision side passes check and TensorRT-RTX builds it for sm89 (no GPU needed)."""
    assert cli("quantize", artifacts(case, "vision"), "--precision", "fp16", "-o", tmp_path / "v.fp16.onnx").code == 0
    assert cli("check", tmp_path / "v.fp16.onnx").code == 0
    built = cli("trt", tmp_path / "v.fp16.onnx", "--flavor", "tensorrt-rtx", "--arch", "sm89", "-o", tmp_path / "v.engine")
    assert built.code == 0, built
