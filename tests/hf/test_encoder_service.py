"""The encoder service (`mmexport serve ARTIFACT --model DIR`): a real Triton server (PyTriton)
takes encoded images, runs the folder's own processor, answers with the embeddings in the layout
vLLM takes (Qwen: image_embeds [tokens, D] and image_grid_thw; LLaVA: [images, tokens, D]) and
what produced them; each bad image gets its own error while serving goes on."""

from __future__ import annotations

import io
import os
import signal

import numpy as np
import pytest
import torch
from support.families import image_features
from support.tiers import uses

from mmexport.client import EncoderError, embeddings, request
from mmexport.samples import bad_images, photos, png
from mmexport.serving.launch import start_service

pytestmark = uses("qwen2_5_vl")


@pytest.fixture(scope="module")
def service(tiny_models, artifacts):
    folder, model = tiny_models("qwen2_5_vl")
    artifact = artifacts("qwen2_5_vl", "vision")
    proc, url = start_service(artifact, folder)
    yield {"url": url, "model": model, "folder": folder, "artifact": artifact}
    os.killpg(proc.pid, signal.SIGKILL)


def test_images_in_vllm_layout_out(service):
    """Three photos of three sizes in one request: Qwen's rank-2 image_embeds and the grids, equal
    to transformers' get_image_features on what the folder's processor makes of them."""
    from transformers import AutoImageProcessor

    pictures = [p.resize(size) for p, size in zip(photos(3), ((56, 84), (140, 84), (56, 112)))]  # (width, height)
    value = embeddings(service["url"], [png(p) for p in pictures])
    made = AutoImageProcessor.from_pretrained(service["folder"])(images=pictures, return_tensors="pt")
    expected = torch.cat(image_features(service["model"], "qwen2_5_vl", {k: made[k] for k in ("pixel_values", "image_grid_thw")})[0])
    assert value["image_embeds"].dim() == 2 and torch.equal(value["image_grid_thw"], made["image_grid_thw"])
    assert len({tuple(g) for g in value["image_grid_thw"].tolist()}) == 3
    error = (value["image_embeds"] - expected).abs().max() / expected.abs().max()
    assert error <= 1e-4, error
    answers = request(service["url"], pictures[:1])  # a PIL image is sent as PNG
    assert answers[0]["producer"]["artifact"] == service["artifact"].name and answers[0]["producer"]["model"] == str(service["folder"].resolve())


def test_bad_images_are_one_clear_error_each_and_serving_goes_on(service):
    from PIL import Image

    for phrase, data in bad_images().items():
        with pytest.raises(EncoderError, match=phrase):
            embeddings(service["url"], [png(photos(1)[0]), data])
    cmyk = io.BytesIO()
    photos(1)[0].convert("CMYK").save(cmyk, format="JPEG")
    sixteen = png(Image.fromarray((np.asarray(photos(1)[0].convert("L"), dtype=np.uint16) * 257)))
    for data in (cmyk.getvalue(), sixteen):  # valid images in other modes are converted, not refused
        assert embeddings(service["url"], [data])["image_embeds"].shape[0] > 0
    assert embeddings(service["url"], [png(photos(1)[0])])["image_embeds"].shape[0] > 0  # still serving


def test_concurrent_clients_get_their_own_answers_in_order(service):
    """8 clients, 3 requests each, all at once (dynamic batching): every answer is its own image's."""
    from concurrent.futures import ThreadPoolExecutor

    pictures = [png(p) for p in photos(6)]
    alone = [embeddings(service["url"], [p])["image_embeds"] for p in pictures]

    def client(k: int) -> list[bool]:
        return [torch.allclose(embeddings(service["url"], [pictures[(k + i) % 6]])["image_embeds"], alone[(k + i) % 6], atol=1e-5) for i in range(3)]

    with ThreadPoolExecutor(8) as pool:
        assert all(all(r) for r in pool.map(client, range(8)))
