"""Model types mmexport does not declare, from tiny folders that mmexport.hf.tiny shrinks from
transformers' own config classes (not the tests' table): transformers' get_image_features is
exported as written, gated, and says so; attached, it answers for the tower; one that cannot be
exported is one line naming the cause, with nothing written; `list --models --all` accounts for
every image-text-to-text type."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from support.cli import assert_one_line
from support.tiers import uses

import mmexport
from mmexport.hf import family
from mmexport.hf.automatic import _process, image_text_types
from mmexport.hf.tiny import save_tiny

pytestmark = uses("automatic")


@pytest.fixture(scope="module")
def janus(tmp_path_factory):
    """Janus: no declaration in mmexport; a SigLIP tower and an aligner, a tensor per batch."""
    folder = tmp_path_factory.mktemp("janus") / "janus"
    model = save_tiny("janus", folder)
    assert family("janus") is None and model is not None
    return folder, model


def test_undeclared_type_through_transformers_own_path(cli, janus, tmp_path):
    folder, model = janus
    result = cli("onnx", "--model", folder, "--vision-tower", "-o", tmp_path / "v.onnx")
    assert result.code == 0, result
    assert "no declaration for model_type 'janus': transformers' own path, gated" in result.stderr
    assert "image processor's outputs for 1, 2 and 3 photos" in result.stdout.replace("\n", " ")
    record = json.loads((tmp_path / "v.onnx.json").read_text())
    assert record["model"]["declared"] is False and record["model"]["pooled"] == "tensor"
    inputs = _process(str(folder), ("pixel_values",), 4, seed=5)  # four photos: more than the gate saw
    owner = model.model
    with torch.no_grad():
        expected = owner.get_image_features(**inputs, return_dict=True).pooler_output
    answered = mmexport.encoder_outputs(tmp_path / "v.onnx", **inputs)["mm_encoder_outputs"]["image"].pooler_output
    assert torch.allclose(answered, expected, atol=1e-5 * float(expected.abs().max()))
    mmexport.attach(model, tmp_path / "v.onnx")
    model.model.vision_model.forward = _refuse  # the tower must not run again
    with torch.no_grad():
        got = owner.get_image_features(**inputs).pooler_output
    assert np.abs((got - expected).numpy()).max() <= 1e-4 * float(expected.abs().max())


def _refuse(*args, **kwargs):
    raise AssertionError("the tower ran after attach")


def test_undeclared_type_that_cannot_export_is_one_line(cli, tmp_path):
    """Chameleon's get_image_features maps VQ codes through the language model's vocabulary: the
    vision modules alone do not give it; one line says so and nothing is written."""
    assert save_tiny("chameleon", tmp_path / "chameleon") is not None
    result = cli("onnx", "--model", tmp_path / "chameleon", "--vision-tower", "-o", tmp_path / "c.onnx")
    assert_one_line(result, 2, "model_type 'chameleon' has no declaration, and transformers' own path reads weights beside the vision modules")
    assert not list(tmp_path.glob("c.onnx*"))


def test_every_image_text_type_has_a_status(cli):
    result = cli("list", "--models", "--all", "--json")
    assert result.code == 0, result
    rows = {row["model_type"]: row for row in json.loads(result.stdout)}
    assert set(image_text_types()) <= set(rows)
    assert all(row["status"] in ("declared", "automatic", "refused", "untried") for row in rows.values())
    assert all(row["cause"] for row in rows.values() if row["status"] in ("refused", "untried"))
    assert rows["qwen3_5"]["status"] == "declared" and rows["janus"]["status"] == "automatic"
    table = cli("list", "--models", "--all")
    assert table.code == 0 and "janus" in table.stdout and "declared" in table.stdout
