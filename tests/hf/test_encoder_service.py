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
from mmexport.errors import UsageError
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


def test_the_client_takes_a_url_as_people_copy_it_and_names_the_processor(service):
    from transformers import AutoImageProcessor

    answers = request(f"http://{service['url']}", [png(photos(1)[0])])  # the scheme, as copied from a browser
    assert answers[0]["embeddings"].shape[0] > 0
    assert answers[0]["producer"]["processor"] == type(AutoImageProcessor.from_pretrained(service["folder"])).__name__
    with pytest.raises(UsageError, match="not an encoder service's address"):
        request("ftp://example", [png(photos(1)[0])])


@pytest.mark.slow
def test_sigterm_stops_the_service_promptly_and_cleanly(tiny_models, artifacts):
    """Clients close what they open: a SIGTERM after they were served stops the server in
    seconds, gracefully; at start it said which processor runs (the PIL one without torchvision)."""
    import time

    folder, _ = tiny_models("qwen2_5_vl")
    proc, url = start_service(artifacts("qwen2_5_vl", "vision"), folder)
    for _ in range(3):
        embeddings(url, [png(photos(1)[0])])
    start = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)
    said = proc.stderr.read() if proc.stderr else ""
    assert time.monotonic() - start < 15, said
    assert "Non-graceful" not in said and "server stopped" in said, said
    assert "Qwen2VLImageProcessorPil" in said and "needs torchvision" in said, said
