"""Video sides (--video): the same towers on the video processor's tensors. For each style of
tower that takes video, two clips of different frame counts and sizes in one call match
transformers' get_video_features (deepstack included) and each clip alone gives its rows; the
clips are real photos panning across frames, cut into patches as Qwen2-VL's processor cuts them
(checked against its image processor here); attached with an image artifact, a prompt with an
image and a clip keeps its logits and greedy tokens while the tower is made to raise; an image
artifact alone says once that videos run on PyTorch; encoder_outputs carries videos too."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from support.checks import assert_close
from support.cli import assert_one_line
from support.families import TINY, config, processor
from support.tiers import tiered, uses
from support.video import clips, patchify

import mmexport
from mmexport.hf import family
from mmexport.hf.layouts import Frames, Patches
from mmexport.hf.model import image_owner


def _takes_video(model_type: str) -> bool:
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    return callable(getattr(getattr(transformers, MODEL_MAPPING_NAMES[model_type]), "get_video_features", None))


def _one_per_style(layout: type) -> list[str]:
    seen: dict = {}
    for case, tiny in TINY.items():
        found = family(tiny.model_type)
        if isinstance(found.video, layout) and tiny.processor is not None and _takes_video(tiny.model_type):
            seen.setdefault((found.video, found.vision), case)
    return list(seen.values())


VIDEO = _one_per_style(Patches)
FRAMES = [case for case in TINY if isinstance(family(TINY[case].model_type).video, Frames) and _takes_video(TINY[case].model_type)]
SHAPES = [(4, 2, 3), (6, 3, 2)]  # (frames, rows, columns of merged tokens): two clips, two lengths, two sizes


def expected(model, inputs):
    with torch.no_grad():
        out = image_owner(model).get_video_features(**inputs, return_dict=True)
    deepstack = [torch.cat(list(level)) for level in (getattr(out, "deepstack_features", None) or [])]
    return torch.cat(list(out.pooler_output)), deepstack


def test_clip_patches_are_the_processors():
    """A two-frame clip of one photo is what Qwen2-VL's image processor makes of that photo (it
    repeats an image temporal_patch_size times): the same patches, the same grid."""
    made, hf = processor("qwen2_vl"), config("qwen2_vl")
    unit = hf.vision_config.patch_size * hf.vision_config.spatial_merge_size
    from mmexport.samples import photo

    picture = photo("coffee").resize((3 * unit, 2 * unit))
    theirs = made(images=[picture], return_tensors="pt")
    frames = np.stack([np.asarray(picture)] * 2)
    ours, grid = patchify(frames, made, hf.vision_config.temporal_patch_size, hf.vision_config.patch_size, hf.vision_config.spatial_merge_size)
    assert grid == theirs["image_grid_thw"][0].tolist()
    assert torch.allclose(ours, theirs["pixel_values"], atol=1e-5)


@pytest.mark.parametrize("case", tiered(VIDEO, fast={"qwen2_5_vl"}))
def test_video_side_matches_get_video_features(tiny_models, artifacts, case):
    _, model = tiny_models(case)
    runtime = mmexport.load(artifacts(case, "video"))
    assert runtime.record.model.part == "video" and runtime.outputs[0].name == "video_embeds"
    inputs = clips(model.config, processor(case), SHAPES, seed=1)
    together = runtime(**{k: v.numpy() for k, v in inputs.items()})
    features, deepstack = expected(model, inputs)
    assert_close(together["video_embeds"], features)
    for spec, level in zip(runtime.outputs[1:], deepstack):
        assert_close(together[spec.name], level)
    rows = 0
    for i, shape in enumerate(SHAPES):  # each clip alone: its rows of the call
        alone = runtime(**{k: v.numpy() for k, v in clips(model.config, processor(case), [shape], seed=1 + i).items()})["video_embeds"]
        assert np.abs(together["video_embeds"][rows : rows + len(alone)] - alone).max() <= 1e-5 * np.abs(alone).max()
        rows += len(alone)
    assert rows == len(together["video_embeds"])


def _towers(owner) -> None:
    """Make the towers a video could run on raise (Video-LLaVA has its own video tower)."""
    for name in ("vision_tower", "video_tower"):
        if hasattr(owner, name):
            getattr(owner, name).forward = _refuse


def frame_stack(model, clips_: int, frames: int, seed: int) -> torch.Tensor:
    """pixel_values_videos [clips, frames, 3, H, W] as LLaVA-OneVision's video processor makes them
    (each frame resized to the tower's size, rescaled, normalised: mean and std 0.5 for SigLIP,
    CLIP's for CLIP), from clips of photos panning."""
    from mmexport.samples import clip

    vision = model.config.vision_config
    side = vision.image_size
    clip_mean = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    mean, std = (np.array(v, np.float32) for v in (((0.5,) * 3, (0.5,) * 3) if "siglip" in vision.model_type else clip_mean))
    stack = np.stack([(clip(frames, side, side, seed + i).astype(np.float32) / 255 - mean) / std for i in range(clips_)])
    return torch.from_numpy(np.ascontiguousarray(stack.transpose(0, 1, 4, 2, 3)))


@pytest.mark.parametrize("case", tiered(FRAMES, fast=set()))
def test_pooled_frames_video_side_matches_get_video_features(tiny_models, artifacts, case):
    """LLaVA-OneVision / LLaVA-NeXT-Video: clips of one call share a frame count; two calls of two
    lengths match get_video_features, and each clip alone gives its rows of the call."""
    _, model = tiny_models(case)
    runtime = mmexport.load(artifacts(case, "video"))
    assert runtime.record.model.part == "video" and runtime.outputs[0].name == "video_embeds"
    for clips_, frames in ((2, 3), (1, 5)):
        pixels = frame_stack(model, clips_, frames, seed=frames)
        together = runtime(pixel_values_videos=pixels.numpy())["video_embeds"]
        with torch.no_grad():
            expected_ = image_owner(model).get_video_features(pixel_values_videos=pixels, return_dict=True).pooler_output
        assert_close(together, expected_)
        for i in range(clips_):  # a row per clip (OneVision), or per frame of each (Video-LLaVA)
            alone = runtime(pixel_values_videos=pixels[i : i + 1].numpy())["video_embeds"]
            assert np.abs(together[i * len(alone) : (i + 1) * len(alone)] - alone).max() <= 1e-5 * np.abs(alone).max()
    attached = mmexport.attach(copy.deepcopy(model), artifacts(case, "video"))
    pixels = frame_stack(model, 1, 2, seed=9)
    _towers(image_owner(attached))
    with torch.no_grad():
        got = image_owner(attached).get_video_features(pixel_values_videos=pixels).pooler_output
        want = image_owner(model).get_video_features(pixel_values_videos=pixels).pooler_output
    assert_close(got.numpy(), want)


@pytest.mark.parametrize("case", tiered(FRAMES, fast=set()))
def test_attached_pooled_frames_video_side_generates_as_the_tower(tiny_models, artifacts, case):
    """A prompt holding a clip: with the video artifact attached and the tower made to raise, the
    logits and greedy tokens are transformers' own."""
    _, model = tiny_models(case)
    pixels = frame_stack(model, 1, 3, seed=6)
    with torch.no_grad():
        pooled = image_owner(model).get_video_features(pixel_values_videos=pixels, return_dict=True).pooler_output
    tokens = pooled.reshape(-1, pooled.shape[-1]).shape[0]  # one clip: its rows (OneVision), or every frame's (Video-LLaVA)
    text = torch.randint(1, 90, (6,), generator=torch.Generator().manual_seed(5))
    ids = torch.cat([text[:3], torch.full((tokens,), model.config.video_token_id), text[3:]])[None]
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values_videos": pixels}
    attached = mmexport.attach(copy.deepcopy(model), artifacts(case, "video"))
    _towers(image_owner(attached))
    with torch.no_grad():
        assert_close(attached(**inputs).logits.numpy(), model(**inputs).logits)
    generated = [m.generate(**inputs, max_new_tokens=4, do_sample=False) for m in (model, attached)]
    assert torch.equal(generated[0], generated[1]) and image_owner(attached).mmexport_video_side.calls >= 2


def _prompt(model, image_tokens: int, video_grid: list[int] | None, frames_apart: bool = False) -> dict[str, torch.Tensor]:
    """One prompt: text, an image between vision start and end, text, a clip likewise (Qwen3-VL's
    processor writes each temporal patch apart, after its timestamp); M-RoPE's token types."""
    c = model.config
    vocab = c.get_text_config().vocab_size
    start, end = c.vision_start_token_id, next(t for t in (getattr(c, "vision_end_token_id", None), 6) if t is not None and t < vocab)
    text = torch.randint(1, 90, (6,), generator=torch.Generator().manual_seed(3))

    def bracket(token: int, count: int) -> list[torch.Tensor]:
        return [torch.tensor([start]), torch.full((count,), token), torch.tensor([end])]

    parts = [text[:2], *(bracket(c.image_token_id, image_tokens) if image_tokens else []), text[2:4]]
    if video_grid:
        t, h, w = video_grid
        per_frame = h * w // c.vision_config.spatial_merge_size**2
        for frame in range(t) if frames_apart else [0]:
            parts += ([torch.tensor([7 + frame])] if frames_apart else []) + bracket(c.video_token_id, per_frame if frames_apart else t * per_frame)
    ids = torch.cat([*parts, text[4:]])[None]
    types = (ids == c.image_token_id).long() + 2 * (ids == c.video_token_id).long()
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": types}


@pytest.mark.parametrize("case", tiered(["qwen2_5_vl", "qwen3_vl"], fast={"qwen2_5_vl"}))
def test_attached_image_and_video_sides(tiny_models, artifacts, case):
    from support.families import image_inputs

    _, model = tiny_models(case)
    merge = model.config.vision_config.spatial_merge_size**2
    images, video = image_inputs(case, 1), clips(model.config, processor(case), SHAPES[:1], seed=2)
    prompt = _prompt(model, int(images["image_grid_thw"].prod()) // merge, video["video_grid_thw"][0].tolist(), frames_apart=case == "qwen3_vl")
    inputs = images | video | prompt
    attached = mmexport.attach(copy.deepcopy(model), artifacts(case, "vision"))
    with pytest.warns(UserWarning, match="a video ran on the PyTorch tower"):
        with torch.no_grad():
            assert_close(attached(**inputs).logits.numpy(), model(**inputs).logits)
    mmexport.attach(attached, artifacts(case, "video"))
    image_owner(attached).visual.forward = _refuse
    with torch.no_grad():
        expected_logits, actual = model(**inputs).logits, attached(**inputs).logits
    assert_close(actual.numpy(), expected_logits)
    tokens = [m.generate(**inputs, max_new_tokens=4, do_sample=False) for m in (model, attached)]
    assert torch.equal(tokens[0], tokens[1])
    assert image_owner(attached).mmexport_video_side.calls >= 2 and image_owner(attached).mmexport_vision_side.calls >= 2


def _refuse(*args, **kwargs):
    raise AssertionError("the tower ran after attach")


@uses("qwen2_5_vl")
def test_encoder_outputs_carry_a_clip(tiny_models, artifacts):
    _, model = tiny_models("qwen2_5_vl")
    video = clips(model.config, processor("qwen2_5_vl"), SHAPES[1:], seed=3)
    text = _prompt(model, 0, video["video_grid_thw"][0].tolist())
    given = mmexport.encoder_outputs(artifacts("qwen2_5_vl", "video"), **video)
    assert "video" in given["mm_encoder_outputs"] and given["pixel_values_videos"] is None
    with torch.no_grad():
        assert_close(model(**text, **given).logits.numpy(), model(**text, **video).logits)


@uses("llava")
def test_video_needs_a_family_with_a_video_side(cli, tiny_models, tmp_path):
    folder, _ = tiny_models("llava")
    assert_one_line(cli("onnx", "--model", folder, "--vision-tower", "--video", "-o", tmp_path / "v.onnx"), 2, "no declared video side")
    assert_one_line(cli("onnx", "--model", folder, "--video", "-o", tmp_path / "v.onnx"), 2, "--vision-tower --video")


@pytest.mark.slow
@uses("qwen2_5_vl")
def test_fp16_video_side_builds_an_engine(cli, artifacts, tmp_path):
    """The fp16 video side passes check; TensorRT-RTX builds it for sm89 with profiles up to 32768 patches."""
    assert cli("quantize", artifacts("qwen2_5_vl", "video"), "--precision", "fp16", "-o", tmp_path / "v.fp16.onnx").code == 0
    assert cli("check", tmp_path / "v.fp16.onnx").code == 0
    built = cli("trt", tmp_path / "v.fp16.onnx", "--flavor", "tensorrt-rtx", "--arch", "sm89", "-o", tmp_path / "v.engine", "--json")
    assert built.code == 0, built
    assert json.loads(built.stdout)["engine"]["profiles"][0]["pixel_values_videos"]["max"][0] == 32768


@pytest.mark.slow
@uses("qwen2_5_vl")
def test_int8_video_side_calibrated_on_clips_and_benched_on_clips(cli, tiny_models, artifacts, tmp_path):
    """`quantize --calib FOLDER` reads video files and folders of frames through the folder's video
    processor; `bench --video FRAMESxHxW` times the video side on clips of that size."""
    from support.video import mp4

    from mmexport.samples import clip

    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(6):
        (clips / f"c{i}.mp4").write_bytes(mp4(clip(4, 56, 84, seed=i)))
    for i in range(4):
        frames = clips / f"f{i}"
        frames.mkdir()
        for k, frame in enumerate(clip(3, 84, 56, seed=10 + i)):
            Image.fromarray(frame).save(frames / f"{k:03d}.png")
    out = tmp_path / "video.int8.onnx"
    result = cli("quantize", artifacts("qwen2_5_vl", "video"), "--precision", "int8", "--calib", clips, "-o", out, "--json")
    assert result.code == 0, result
    made = json.loads(result.stdout)
    assert made["quantization"]["calibration"]["source"] == str(clips.resolve()) and made["parity"]["passed"]
    folder = tiny_models("qwen2_5_vl")[0]
    args = ("--model", folder, "--vision-tower", "--video", "4x56x84", "--backends", "torch,ort", "--batch", "2", "--iters", "2", "--json", tmp_path / "b.json")
    assert cli("bench", *args).code == 0
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert {r["sizes"] for r in rows} == {"2 clip(s) of frames x H x W 4x56x84, 4x56x84 (96 patches)"} and all(r["cosine"] > 0.99999 for r in rows)
    assert "FRAMESxHxW" in cli("bench", "--model", folder, "--vision-tower", "--video", "16x448").stderr


def _positioned_clips(model, sizes: list[tuple[int, int, int]], seed: int) -> dict[str, torch.Tensor]:
    """Clips of (frames, rows, columns of soft tokens) as Gemma 4's video processors lay them out:
    every frame's patches padded to 70 soft tokens, a row per frame, num_frames_per_video."""
    layout = family(model.config.model_type).video
    per_token = layout.params(model.config)["kernel"] ** 2
    return layout._images(model.config, [(r, c) for _, r, c in sizes], seed, patches=70 * per_token, frames=[f for f, _, _ in sizes])


@pytest.mark.parametrize("case, tower", [("gemma4", "vision_tower"), ("gemma4_unified", "embed_vision")])
def test_positioned_patches_video_side_matches_get_video_features(tiny_models, artifacts, case, tower):
    """Gemma 4 (and its encoder-free Unified): the image graph on every frame; two clips of different
    frame counts and sizes in one call are get_video_features' answer (split per clip by
    num_frames_per_video), each clip alone gives its rows, and attached, get_video_features
    answers with the tower made to raise."""
    _, model = tiny_models(case)
    runtime = mmexport.load(artifacts(case, "video"))
    assert runtime.record.model.part == "video" and runtime.outputs[0].name == "video_embeds"
    inputs = _positioned_clips(model, [(3, 2, 3), (2, 4, 1)], seed=4)
    together = runtime(**{k: v.numpy() for k, v in inputs.items()})["video_embeds"]
    features, _ = expected(model, inputs)
    assert_close(together, features)
    start, row = 0, 0
    for frames in inputs["num_frames_per_video"].tolist():
        alone = {k: v[start : start + frames].numpy() for k, v in inputs.items() if k != "num_frames_per_video"}
        rows = runtime(**alone, num_frames_per_video=np.array([frames]))["video_embeds"]
        assert np.abs(together[row : row + len(rows)] - rows).max() <= 1e-5 * np.abs(rows).max()
        start, row = start + frames, row + len(rows)
    attached = mmexport.attach(copy.deepcopy(model), artifacts(case, "video"))
    getattr(image_owner(attached), tower).forward = _refuse
    with torch.no_grad():
        got = image_owner(attached).get_video_features(**inputs).pooler_output
        want = image_owner(model).get_video_features(**inputs).pooler_output
    assert len(got) == len(want) == 2
    for mine, theirs in zip(got, want):
        assert_close(mine.numpy(), theirs)


def _strip_clip(case: str, frames: int, height: int, width: int, seed: int) -> dict[str, torch.Tensor]:
    """A clip as MiniCPM-V 4.6's video processor packs it (it needs torchvision): every frame resized
    and sliced as an image, all slices side by side in one strip; made here by the folder's image
    processor from the clip's frames, named as the video processor names them."""
    from mmexport.samples import clip

    out = processor(case)(images=[Image.fromarray(f) for f in clip(frames, height, width, seed)], return_tensors="pt")
    return {"pixel_values_videos": out["pixel_values"], "target_sizes_videos": out["target_sizes"]}


@pytest.mark.parametrize("case", tiered(["minicpmv4_6", "minicpm_ocr"], fast=set()))
def test_strip_video_side_matches_get_video_features(tiny_models, artifacts, case):
    """MiniCPM-V 4.6 (16x) and MiniCPM-o OCR (4x): two clips of different lengths and sizes in one
    strip are get_video_features' answer, and each clip alone gives its rows of the call."""
    _, model = tiny_models(case)
    runtime = mmexport.load(artifacts(case, "video"))
    assert runtime.record.model.part == "video" and [s.name for s in runtime.inputs] == ["pixel_values_videos", "target_sizes_videos"]
    clips_ = [_strip_clip(case, 3, 96, 160, 1), _strip_clip(case, 2, 160, 96, 2)]
    together = {k: torch.cat([c[k] for c in clips_], dim=-1 if k == "pixel_values_videos" else 0) for k in clips_[0]}
    produced = runtime(**{k: v.numpy() for k, v in together.items()})["video_embeds"]
    features, _ = expected(model, together)
    assert_close(produced, features)
    row = 0
    for alone in clips_:
        rows = runtime(**{k: v.numpy() for k, v in alone.items()})["video_embeds"]
        assert np.abs(produced[row : row + len(rows)] - rows).max() <= 1e-5 * np.abs(rows).max()
        row += len(rows)
    assert row == len(produced)


def _tubelets(model, clips_: int, frames: int, rows: int, cols: int, seed: int) -> torch.Tensor:
    """pixel_values_videos [clips, tubelets, T*3, H, W] as Nemotron-H Omni's video processor packs
    them (it needs torchvision): frames of photos panning, normalised, the last repeated to whole
    tubelets of T frames stacked along the channels."""
    from mmexport.samples import clip

    vision = model.config.vision_config
    mean, std = np.asarray(vision.norm_mean, np.float32), np.asarray(vision.norm_std, np.float32)
    t = vision.video_temporal_patch_size
    out = []
    for i in range(clips_):
        x = (clip(frames, rows * vision.patch_size, cols * vision.patch_size, seed + i).astype(np.float32) / 255 - mean) / std
        x = np.concatenate([x, np.repeat(x[-1:], -frames % t, 0)]).transpose(0, 3, 1, 2)
        out.append(x.reshape(-1, t * 3, *x.shape[2:]))
    return torch.from_numpy(np.ascontiguousarray(np.stack(out)))


def test_tubelet_video_side_matches_get_video_features(tiny_models, artifacts):
    """Nemotron-H Omni: clips of one call share a length and size (one tensor); two calls of two
    lengths and sizes match get_video_features, and each clip alone gives its rows of the call."""
    _, model = tiny_models("nemotron_h_omni")
    runtime = mmexport.load(artifacts("nemotron_h_omni", "video"))
    assert runtime.record.model.part == "video" and runtime.outputs[0].name == "video_embeds"
    for clips_, frames, rows, cols in ((2, 5, 4, 6), (1, 2, 6, 2)):
        videos = _tubelets(model, clips_, frames, rows, cols, seed=clips_)
        produced = runtime(pixel_values_videos=videos.numpy())["video_embeds"]
        features, _ = expected(model, {"pixel_values_videos": videos})
        assert_close(produced, features)
        per_clip = len(produced) // clips_
        for i in range(clips_):
            alone = runtime(pixel_values_videos=videos[i : i + 1].numpy())["video_embeds"]
            assert np.abs(produced[i * per_clip : (i + 1) * per_clip] - alone).max() <= 1e-5 * np.abs(alone).max()


def test_bench_says_when_it_cannot_time_the_clips_asked(cli, tiny_models, artifacts, tmp_path):
    """A folder whose video processor does not run here (this one has none saved; Gemma 4's needs
    torchvision): bench times the layout's own clips and says so beside the table instead of
    passing them off as the --video asked; --video on an image-side artifact is refused."""
    tiny_models("gemma4_unified")
    args = ("--video", "4x96x96", "--backends", "ort", "--batch", "1", "--iters", "1", "--json", tmp_path / "b.json")
    result = cli("bench", artifacts("gemma4_unified", "video"), *args)
    assert result.code == 0, result
    report = json.loads((tmp_path / "b.json").read_text())
    assert any(n.startswith("not timed on 4x96x96 clips") for n in report["notes"]), report["notes"]
    assert all(r["sizes"].startswith("1 clip(s) of 16 frames") for r in report["results"]), report["results"]
    refused = cli("bench", artifacts("gemma4_unified", "vision"), "--video", "4x96x96")
    assert_one_line(refused, 2, "--video times a video-side artifact")
