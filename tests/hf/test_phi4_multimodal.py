"""Phi-4-multimodal's image side where it departs from the other families: the tower attends over
the whole crop whatever the batch holds (transformers' sdpa path turns causal when no crop of a
batch is padded; its eager path, and the released SigLIP, do not), and the HD canvas is read from
the processor's tensors or refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.checks import assert_close
from support.families import _phi4_features, image_inputs

import mmexport
from mmexport.errors import InputError

CASE = "phi4_multimodal"


def test_an_unpadded_batch_attends_over_the_whole_crop(tiny_models, artifacts):
    """One image that fills its canvas (no padding anywhere in the call): the artifact equals
    transformers' own image embedding with eager attention, bidirectional as in the release."""
    _, model = tiny_models(CASE)
    inputs = image_inputs(CASE, 1, seed=2)  # a 1x1 canvas, nothing padded
    assert inputs["image_attention_mask"].min() == 1
    expected = torch.cat(_phi4_features(model, inputs))  # eager attention
    runtime = mmexport.load(artifacts(CASE, "vision"))
    produced = runtime(**{k: v.numpy() for k, v in inputs.items()})["image_embeds"]
    assert_close(produced, expected)


def test_a_canvas_the_crops_do_not_hold_is_refused(artifacts):
    runtime = mmexport.load(artifacts(CASE, "vision"))
    inputs = {k: v.numpy() for k, v in image_inputs(CASE, 2, seed=1).items()}
    inputs["image_sizes"] = inputs["image_sizes"] * 3  # 9x the crops the sample holds
    with pytest.raises(InputError, match="need more crops than image_pixel_values holds"):
        runtime(**inputs)
    inputs["image_sizes"] = np.array([[50, 56], [56, 56]])
    with pytest.raises(InputError, match="multiples of the 56-pixel crop"):
        runtime(**inputs)
