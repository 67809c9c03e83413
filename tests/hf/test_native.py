"""Native resolution (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, GLM-4V, Mistral 3): the grid tensors mmexport
derives beside the graph agree with transformers' own helpers; several images of different
sizes in one call each give what they give alone; the grid decides the answer (swapped grids do
not match); a grid that cannot be is one clear error; every stage takes the artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from support.cli import assert_one_line
from support.families import TINY, image_features, image_inputs, save_model
from support.tiers import tiered, uses

import mmexport
from mmexport.derivations import qwen
from mmexport.errors import InputError
from mmexport.hf import family
from mmexport.samples import write_photos


@pytest.fixture
def exported(tiny_models, artifacts):
    """(folder, model, vision-side artifact) of a case, made once per session."""

    def get(case: str):
        folder, model = tiny_models(case)
        return folder, model, artifacts(case, "vision")

    return get


def test_grid_tensors_are_transformers_own():
    """Positions, frames, Qwen2.5-VL's windows (partial ones at the edges) and the resampling taps,
    against transformers' vision_utils, on grids with several frames and odd window counts."""
    from transformers.vision_utils import (
        get_vision_cu_seqlens,
        get_vision_interpolation_indices_and_weights,
        get_vision_position_ids,
        get_vision_window_index,
    )

    grid = np.array([[1, 4, 6], [1, 10, 6], [2, 4, 4], [1, 2, 2]])
    at = qwen.patch_coordinates(grid, 2)
    assert np.array_equal(np.stack([at["row"], at["col"]], -1), get_vision_position_ids(torch.tensor(grid), 2).numpy())
    starts = get_vision_cu_seqlens(torch.tensor(grid)).numpy()
    assert np.array_equal(np.searchsorted(starts[1:], np.arange(len(at["frame"])), side="right"), at["frame"])
    index, starts = get_vision_window_index(torch.tensor(grid), 2, 56, 14)  # 2x2 merged tokens per window
    theirs = np.empty(len(at["row"]), np.int64)
    patches = (index.numpy()[:, None] * 4 + np.arange(4)).reshape(-1)
    for window, (a, b) in enumerate(zip(starts[:-1].tolist(), starts[1:].tolist())):
        theirs[patches[a:b]] = window
    ours = qwen.window_ids(grid, at, 2, 2)
    assert len(set(zip(ours.tolist(), theirs.tolist()))) == len(set(ours.tolist())) == len(set(theirs.tolist()))  # the same partition
    for mode, corners in (("bilinear", True), ("bicubic", False)):
        taps, weights = qwen.position_taps(grid, at, {"side": 5, "mode": mode, "align_corners": corners})
        their_taps, their_weights = get_vision_interpolation_indices_and_weights(torch.tensor(grid), 5, mode, corners, spatial_merge_size=2)
        assert np.array_equal(taps, their_taps.numpy()) and np.abs(weights - their_weights.numpy()).max() < 1e-6


def test_grouped_attention_is_attention_within_each_group():
    from mmexport.derivations import groups
    from mmexport.hf.attention import grouped_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(10, 2, 4, generator=g) for _ in range(3))
    ids = np.array([0, 0, 1, 1, 1, 0, 2, 2, 1, 1])
    got = grouped_attention(q, k, v, tuple(torch.from_numpy(a) for a in groups(ids)), 0.5)
    for group in range(3):
        rows = np.flatnonzero(ids == group)
        want = torch.nn.functional.scaled_dot_product_attention(*(x[rows].transpose(0, 1) for x in (q, k, v)), scale=0.5).transpose(0, 1)
        assert torch.allclose(got[rows], want, atol=1e-6)


def _one_per_layout() -> list[str]:
    """The first family of each distinct layout that derives beside its graph (window, taps, packing...)."""
    seen: dict = {}
    for case, tiny in TINY.items():
        found = family(tiny.model_type)
        if found.images.derives and found.vision is not None:
            seen.setdefault(found.images, case)
    return list(seen.values())


NATIVE = _one_per_layout()


@pytest.mark.parametrize("case", tiered(NATIVE, fast={"qwen2_5_vl"}))
def test_each_image_gives_what_it_gives_alone(exported, case):
    """Three photos through the processor one at a time, put together as the family's layout
    collates them (packed, padded): one call gives each image's rows as its own call gives them."""
    _, model, artifact = exported(case)
    runtime = mmexport.load(artifact)
    layout = family(TINY[case].model_type).images
    alone = [{k: v.numpy() for k, v in image_inputs(case, 1, seed=s).items()} for s in (1, 2, 3)]
    theirs = torch.cat([f.reshape(-1, f.shape[-1]) for f in image_features(model, case, image_inputs(case, 1, seed=2))[0]]).numpy()
    ours = runtime(**alone[1])[runtime.outputs[0].name]
    assert np.abs(ours.reshape(theirs.shape) - theirs).max() <= 1e-4 * np.abs(theirs).max()  # one photo at the processor's own size
    assert len({tuple(a[layout.names[0]].shape) for a in alone} | {str(a.get("image_grid_thw")) for a in alone}) > 1  # not all alike
    name = runtime.outputs[0].name
    together = runtime(**layout.collate(alone))[name]
    own = [runtime(**item)[name] for item in alone]
    parts = layout.per_item(together, alone, runtime.record.derivation)
    assert [p.shape for p in parts] == [o.reshape(-1, o.shape[-1]).shape for o in own]
    for part, mine in zip(parts, own):
        assert np.abs(part - mine.reshape(part.shape)).max() <= 1e-5 * np.abs(mine).max()


@pytest.mark.parametrize("case", tiered(["qwen2_5_vl", "qwen3_vl"], fast={"qwen2_5_vl"}))
def test_swapped_grids_do_not_match(exported, case):
    """Two photos of transposed sizes (grids 4x6 and 6x4 patches of merged blocks) with their grid
    rows swapped: the input is accepted (the counts agree) and the answer is not transformers'."""
    from support.families import processor

    from mmexport.samples import photos

    _, model, artifact = exported(case)
    runtime = mmexport.load(artifact)
    unit = model.config.vision_config.patch_size * model.config.vision_config.spatial_merge_size
    pictures = [p.resize(size) for p, size in zip(photos(2), ((2 * unit, 3 * unit), (3 * unit, 2 * unit)))]
    inputs = {k: v for k, v in processor(case)(images=pictures, return_tensors="pt").items() if k in ("pixel_values", "image_grid_thw")}
    assert inputs["image_grid_thw"][0].tolist() != inputs["image_grid_thw"][1].tolist()
    expected = torch.cat([i.reshape(-1, i.shape[-1]) for i in image_features(model, case, inputs)[0]]).numpy()
    name = runtime.outputs[0].name
    correct = runtime(pixel_values=inputs["pixel_values"].numpy(), image_grid_thw=inputs["image_grid_thw"].numpy())[name]
    assert np.abs(correct - expected).max() <= 1e-4 * np.abs(expected).max()
    swapped = runtime(pixel_values=inputs["pixel_values"].numpy(), image_grid_thw=inputs["image_grid_thw"].flip(0).numpy())[name]
    assert swapped.shape == expected.shape and np.abs(swapped - expected).max() > 1e-2 * np.abs(expected).max()


@uses("qwen2_5_vl")
def test_grids_that_cannot_be_are_one_clear_error(exported, tmp_path, cli):
    _, _, artifact = exported("qwen2_5_vl")
    runtime = mmexport.load(artifact)
    inputs = {k: v.numpy() for k, v in image_inputs("qwen2_5_vl", 2).items()}
    pixels, grid = inputs["pixel_values"], inputs["image_grid_thw"]
    cases = {
        "patches but image_grid_thw describes": (pixels[:-4], grid),
        "not positive": (pixels, np.array([[1, 0, 4], *grid[1:]])),
        "multiples of the merge size": (pixels, np.array([[1, 3, 4], *grid[1:]])),
        "must be 3 [images, 3]": (pixels, grid[:, :2]),
    }
    for phrase, (p, g) in cases.items():
        with pytest.raises(InputError, match=phrase.replace("[", r"\[").replace("]", r"\]")):
            runtime(pixel_values=p, image_grid_thw=g.astype(np.int64))
    np.savez(tmp_path / "bad.npz", pixel_values=pixels[:-4], image_grid_thw=grid)
    assert_one_line(cli("check", artifact, "--inputs", tmp_path / "bad.npz"), 2, "image_grid_thw describes")


@pytest.mark.slow
@uses("qwen2_5_vl")
def test_native_side_every_stage(exported, tmp_path, cli):
    """Qwen2.5-VL's vision side: fp16 and int8 calibrated on photos through its processor (each
    photo its own grid), check on them, a TensorRT-RTX fp16 engine for sm89 whose profiles span
    the patch range, a Triton entry, bench against transformers."""
    folder, _, artifact = exported("qwen2_5_vl")
    photos = tmp_path / "photos"
    write_photos(photos)
    for precision in ("fp16", "int8"):
        result = cli("quantize", artifact, "--precision", precision, "--calib", photos, "-o", tmp_path / f"v.{precision}.onnx", "--json")
        assert result.code in (0, 1), result
        if result.code == 1:  # a refusal names its cause
            assert "in '" in result.stderr or "int8" in result.stderr, result
            continue
        assert cli("check", tmp_path / f"v.{precision}.onnx").code == 0
    built = cli("trt", tmp_path / "v.fp16.onnx", "--flavor", "tensorrt-rtx", "--arch", "sm89", "-o", tmp_path / "v.engine", "--json")
    assert built.code == 0, built
    profile = json.loads(built.stdout)["engine"]["profiles"][0]
    assert profile["pixel_values"]["max"][0] == 16384 and "window_index" in profile
    args = ("--vision-tower", "--backends", "torch,ort", "--batch", "1,2", "--iters", "2", "--image", "112x168", "--json", tmp_path / "b.json")
    bench = cli("bench", "--model", folder, *args)
    assert bench.code == 0, bench
    report = json.loads((tmp_path / "b.json").read_text())
    assert all(r["cosine"] > 0.99999 for r in report["results"]) and any("grid tensors derived" in n for n in report["notes"])
    assert all("112x168" in r["sizes"] for r in report["results"])  # the photos are the size asked for
    assert "HxW" in cli("bench", "--model", folder, "--vision-tower", "--image", "448").stderr


def _typed(model) -> dict[str, int]:
    """Element type of every tensor: value_info, outputs, initializers and what each Cast makes."""
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    types |= {t.name: t.data_type for t in model.graph.initializer}
    types |= {n.output[0]: next(a.i for a in n.attribute if a.name == "to") for n in model.graph.node if n.op_type == "Cast"}
    return types


@pytest.mark.slow  # over 10 s on 2 cores: the full suite (CI) runs it, the fast tier stays under 4 min
def test_fp16_keeps_the_layers_that_overflow_in_fp32(tmp_path, cli):
    """A tower with massive activations (one block's MLP writes ~1e6 into the residual stream, as
    some released towers do past fp16's 65504): a plain conversion types those tensors fp16 (inf
    wherever fp16 is computed: TensorRT; ONNX Runtime's CPU provider computes most ops in fp32 and
    hides it); the variant measures where they are and keeps those layers in fp32, and passes."""
    import onnx

    from mmexport.precisions.fp16_graph import to_fp16
    from mmexport.precisions.fp16_measure import OVERFLOW, ROUNDING, float_tensors, maxima

    model = save_model("qwen2_5_vl", tmp_path / "plain")
    with torch.no_grad():
        model.model.visual.blocks[0].mlp.down_proj.weight.mul_(1e8)  # its output reaches ~1e6
    model.to(torch.bfloat16).save_pretrained(tmp_path / "massive")
    (tmp_path / "massive" / "preprocessor_config.json").write_bytes((tmp_path / "plain" / "preprocessor_config.json").read_bytes())
    assert cli("onnx", "--model", tmp_path / "massive", "--vision-tower", "-o", tmp_path / "v.onnx").code == 0
    fp32 = onnx.load(str(tmp_path / "v.onnx"))
    feeds = mmexport.load(tmp_path / "v.onnx").record.derivation({k: v.numpy() for k, v in image_inputs("qwen2_5_vl", 2).items()})
    huge = {name for name, value in maxima(fp32, float_tensors(fp32), [feeds]).items() if value > 65504}
    assert huge and all(_typed(to_fp16(onnx.load(str(tmp_path / "v.onnx"))))[name] == onnx.TensorProto.FLOAT16 for name in huge)
    result = cli("quantize", tmp_path / "v.onnx", "--precision", "fp16", "--json")
    assert result.code == 0, result
    reasons = json.loads(result.stdout)["quantization"]["kept_fp32"]["reasons"]
    assert reasons[OVERFLOW]["max_abs"] > 65504 and reasons[ROUNDING]["first"]  # the rotary angles and their arithmetic too
    converted = onnx.load(str(tmp_path / "v.fp16.onnx"))
    variant, nodes = _typed(converted), {n.name: n for n in converted.graph.node}
    touching = [n.name for n in fp32.graph.node if huge & {*n.input, *n.output}]
    for name in touching:  # every layer that carries those values computes in fp32, inputs included
        assert all(variant.get(i) in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.BOOL) for i in nodes[name].input if i), name
    assert cli("check", tmp_path / "v.fp16.onnx").code == 0


@pytest.mark.slow
@uses("qwen2_5_vl")
@pytest.mark.parametrize("part", ["vision", "video"])
def test_triton_ensemble_derives_the_grid_in_a_real_server(exported, artifacts, tmp_path, part):
    """The repository entry takes pixel_values and image_grid_thw (a video side: pixel_values_videos
    and video_grid_thw): NAME_grid (Python backend, mmexport's derivation) then NAME_graph. Run in
    PyTriton's real tritonserver, the graph step on its ONNX through ONNX Runtime (that server has
    no onnxruntime backend): the ensemble answers as the runtime does, and a bad grid is one error
    to that client while serving goes on."""
    import shutil
    import subprocess
    import time

    import tritonclient.http as http
    from support.families import processor
    from support.servers import triton_backends
    from support.video import clips

    from mmexport.serving.launch import free_port

    _, model, artifact = exported("qwen2_5_vl")
    if part == "video":
        artifact = artifacts("qwen2_5_vl", "video")
    repo = tmp_path / "repo"
    mmexport.write_triton(artifact, repo, part)
    config = (repo / f"{part}_graph" / "config.pbtxt").read_text().replace('platform: "onnxruntime_onnx"', 'backend: "python"')
    (repo / f"{part}_graph" / "config.pbtxt").write_text(config)
    shutil.copy2(Path(__file__).parents[1] / "support" / "triton_onnx_step.py", repo / f"{part}_graph" / "1" / "model.py")
    port = free_port()
    server, env = triton_backends(tmp_path / "backends")
    args = [server, f"--model-repository={repo}", f"--backend-directory={tmp_path / 'backends'}", f"--http-port={port}", "--http-address=127.0.0.1"]
    args += ["--allow-grpc=false", "--allow-metrics=false"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        client = http.InferenceServerClient(f"127.0.0.1:{port}")
        for _ in range(240):
            try:
                if client.is_model_ready(part):
                    break
            except Exception:
                pass
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.5)

        def infer(inputs):
            request = []
            for name, value in inputs.items():
                tensor = http.InferInput(name, list(value.shape), "FP32" if value.dtype == np.float32 else "INT64")
                tensor.set_data_from_numpy(value)
                request.append(tensor)
            return client.infer(part, request).as_numpy(output)

        if part == "video":
            pixels, grid, output = "pixel_values_videos", "video_grid_thw", "video_embeds"
            inputs = {k: v.numpy() for k, v in clips(model.config, processor("qwen2_5_vl"), [(4, 2, 3), (2, 3, 2)]).items()}
        else:
            pixels, grid, output = "pixel_values", "image_grid_thw", "image_embeds"
            inputs = {k: v.numpy() for k, v in image_inputs("qwen2_5_vl", 3).items()}
        expected = mmexport.load(artifact)(**inputs)[output]
        assert np.abs(infer(inputs) - expected).max() <= 1e-5 * np.abs(expected).max()
        with pytest.raises(Exception, match=f"{grid} describes"):
            infer({pixels: inputs[pixels][:-4], grid: inputs[grid]})
        assert np.abs(infer(inputs) - expected).max() <= 1e-5 * np.abs(expected).max()  # still serving
    finally:
        proc.kill()
        proc.wait(30)
