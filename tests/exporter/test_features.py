"""`mmexport features`: a local vision tower (random weights, made here) over generated images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from support.cli import assert_one_line
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel


@pytest.fixture(scope="module")
def tower_and_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("features")
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=56, patch_size=14)
    CLIPVisionModel(config).save_pretrained(root / "tower")
    CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56}).save_pretrained(root / "tower")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 255, (64 + 8 * i, 80, 3), dtype=np.uint8)).save(root / "images" / f"img{i}.png")
    return root


def test_features_match_the_tower(cli, tower_and_images, tmp_path):
    root = tower_and_images
    out = tmp_path / "feats.npz"
    result = cli("features", "--vision-tower", root / "tower", "--images", root / "images", "--layer", "-2", "--drop-cls", "-o", out)
    assert result.code == 0, result
    features = np.load(out, allow_pickle=False)["vision_features"]
    assert features.shape == (10, 16, 32)  # 56 px / 14 = 4x4 patches, CLS dropped
    model = CLIPVisionModel.from_pretrained(root / "tower").eval()
    pixels = CLIPImageProcessor.from_pretrained(root / "tower")(images=[Image.open(root / "images" / "img3.png").convert("RGB")], return_tensors="pt")[
        "pixel_values"
    ]
    with torch.no_grad():
        expected = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][0, 1:]
    np.testing.assert_allclose(features[3], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_features_feed_calibration(cli, tower_and_images, tmp_path):
    root = tower_and_images
    assert cli("features", "--vision-tower", root / "tower", "--images", root / "images", "--layer", "-1", "-o", tmp_path / "f.npy").code == 0
    assert np.load(tmp_path / "f.npy").shape == (10, 17, 32)  # CLS kept
    assert cli("onnx", "-c", "linear", "--preset", "llava-v1-7b", "-o", tmp_path / "l.onnx", "--no-check").code == 0
    # a 1024-wide connector cannot take 32-wide features: the calibration check says so
    result = cli("quantize", tmp_path / "l.onnx", "--precision", "int8", "--calib", tmp_path / "f.npy")
    assert_one_line(result, 2, "must be 1024")


def test_features_bad_inputs(cli, tower_and_images, tmp_path):
    root = tower_and_images
    assert_one_line(cli("features", "--vision-tower", tmp_path, "--images", root / "images", "-o", tmp_path / "f.npz"), 2, "config.json")
    (tmp_path / "empty").mkdir()
    assert_one_line(cli("features", "--vision-tower", root / "tower", "--images", tmp_path / "empty", "-o", tmp_path / "f.npz"), 2, "no images")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    assert_one_line(cli("features", "--vision-tower", root / "tower", "--images", tmp_path / "broken", "-o", tmp_path / "f.npz"), 2, "x.png")
    assert_one_line(cli("features", "--vision-tower", root / "tower", "--images", root / "images", "--layer", "9", "-o", tmp_path / "f.npz"), 2, "--layer 9")
    assert not (tmp_path / "f.npz").exists()
