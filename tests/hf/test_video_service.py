"""The encoder service for a video side (`mmexport serve VIDEO_ARTIFACT --model DIR`): a real Triton
server takes clips (an MP4 file decoded by PyAV, or frames sent as a ZIP of PNGs), runs the
folder's video processor (without torchvision: transformers' PIL image processor per frame, the
frames stacked in time as Qwen2-VL's video processor stacks them) and answers per clip with
vLLM's video_embeds and video_grid_thw; each bad clip gets its own error while serving goes on."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from support.families import processor
from support.tiers import uses
from support.video import mp4, patchify, zipped

from mmexport.client import EncoderError, embeddings
from mmexport.hf.decoding import MAX_FRAMES, decode_clip
from mmexport.hf.model import image_owner
from mmexport.samples import bad_images, clip, photos
from mmexport.serving.launch import start_service

pytestmark = [uses("qwen2_5_vl"), pytest.mark.slow]  # the image service's tests keep a server in the fast tier


@pytest.fixture(scope="module")
def service(tiny_models, artifacts):
    folder, model = tiny_models("qwen2_5_vl")
    proc, url = start_service(artifacts("qwen2_5_vl", "video"), folder)
    yield {"url": url, "model": model}
    os.killpg(proc.pid, signal.SIGKILL)


def _expected(model, clips: list[np.ndarray]) -> torch.Tensor:
    vision = model.config.vision_config
    packed = [patchify(c, processor("qwen2_5_vl"), vision.temporal_patch_size, vision.patch_size, vision.spatial_merge_size) for c in clips]
    inputs = {"pixel_values_videos": torch.cat([p for p, _ in packed]), "video_grid_thw": torch.tensor([g for _, g in packed])}
    with torch.no_grad():
        return torch.cat(list(image_owner(model).get_video_features(**inputs, return_dict=True).pooler_output))


def test_clips_in_vllm_layout_out(service):
    """An MP4 of 5 frames and 4 frames sent as PNGs, of two sizes, in one request: video_embeds
    [tokens, D] and one grid row per clip, equal to get_video_features on the same frames."""
    first, second = clip(5, 56, 84, seed=1), clip(4, 84, 56, seed=2)
    video = mp4(first)
    decoded = decode_clip(video)  # H.264 is lossy: the service sees these frames
    assert decoded.shape == first.shape and np.abs(decoded.astype(int) - first).mean() < 12
    value = embeddings(service["url"], videos=[video, second])
    assert value["video_grid_thw"].tolist() == [[3, 4, 6], [2, 6, 4]]  # odd frame counts padded with the last frame
    expected = _expected(service["model"], [decoded, second])
    error = (value["video_embeds"] - expected).abs().max() / expected.abs().max()
    assert value["video_embeds"].dim() == 2 and error <= 1e-4, error


def test_bad_clips_are_one_clear_error_each_and_serving_goes_on(service):
    good = list(clip(2, 56, 56))
    video = mp4(clip(4, 56, 56))
    bad = {
        "not a video PyAV can decode": video[: len(video) // 3],  # truncated
        "no frames": zipped([]),
        "frames differ in size": zipped([photos(1)[0].resize((56, 56)), photos(1)[0].resize((84, 56))]),
        "decompression bomb": zipped([bad_images()["decompression bomb"]]),
        "empty clip": b"",
        f"more than the {MAX_FRAMES}": zipped([b"x"] * (MAX_FRAMES + 1)),
        "not a video": b"GIF89a but not really a clip",
    }
    for phrase, data in bad.items():
        with pytest.raises(EncoderError, match=phrase):
            embeddings(service["url"], videos=[good, data])
    assert embeddings(service["url"], videos=[good])["video_embeds"].shape[0] > 0  # still serving
