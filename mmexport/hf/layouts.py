"""The tensors a model's image processor returns, by kind of layout: their specs (named axes, read
from the transformers config), valid sample inputs for the parity gate (several images, sizes and
paddings, valid for any config transformers accepts), what mmexport derives from them beside the
graph, and how the graph's output splits back into one answer per image (or sample)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from ..derivations import REGISTRY as DERIVATIONS
from ..derivations import Derivation, Derived, Feeds, Identity
from ..errors import InputError
from ..specs import Axis, TensorSpec

Sample = dict[str, torch.Tensor]


class ImageLayout(Protocol):
    """What every layout declares; `hf` is the transformers config of the model."""

    @property
    def names(self) -> tuple[str, ...]: ...  # what the processor returns, by name, in the graph's order

    @property
    def derives(self) -> str | None: ...  # what mmexport derives beside the graph, in words (None: nothing)

    def inputs(self, hf: Any) -> list[TensorSpec]: ...

    def samples(self, hf: Any) -> list[Sample]: ...  # the gate's cases, the last one the export example

    def derivation(self, hf: Any) -> Derivation: ...

    def first_axis(self, hf: Any) -> Axis: ...  # what one row of the connector's input is

    def collate(self, items: list[Feeds]) -> Feeds: ...  # several processor outputs, one call

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample: ...  # bench, synthetic calibration

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]: ...

    def describe(self, hf: Any, feeds: Feeds) -> str: ...  # what a request holds, in words (bench)


def _side(vision: Any) -> tuple[int, int]:
    size = vision.image_size
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _pixels(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _concatenated(items: list[Feeds]) -> Feeds:
    return {name: np.concatenate([i[name] for i in items]) for name in items[0]}


def _by_rows(output: np.ndarray, items: list[Feeds]) -> list[np.ndarray]:
    """[rows, tokens, D] back per item, each item's rows (tiles) as one [tokens, D]."""
    counts = np.cumsum([len(i["pixel_values"]) for i in items])[:-1]
    return [part.reshape(-1, output.shape[-1]) for part in np.split(output, counts)]


def _by_tokens(output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
    """[tokens, D] packed over items, split at each item's token count (what the grid says)."""
    assert isinstance(derivation, Derived)
    sizes = [sum(derivation.split(item)) for item in items]
    return np.split(output, np.cumsum(sizes)[:-1])


@dataclass(frozen=True)
class Pixels:
    """pixel_values [batch, C, H, W] at the tower's fixed size; `axis` names what a row is
    (images, or tiles of images); `text` adds InstructBLIP's instruction; `name`: what the
    processor calls the pixels (Video-LLaVA: pixel_values_images)."""

    axis: str = "batch"
    text: bool = False
    max_rows: int = 64
    name: str = "pixel_values"
    derives: ClassVar[str | None] = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, "qformer_input_ids", "qformer_attention_mask") if self.text else (self.name,)

    def inputs(self, hf: Any) -> list[TensorSpec]:
        vision = hf.vision_config
        rows = Axis(self.axis, 1, 1, self.max_rows, samples=(1, 2, 3))
        specs = [TensorSpec(self.name, (rows, getattr(vision, "num_channels", 3), *_side(vision)))]
        if self.text:
            text = Axis("text_tokens", 1, 8, hf.qformer_config.max_position_embeddings - hf.num_query_tokens, samples=(5, 3, 7))
            specs += [TensorSpec("qformer_input_ids", (rows, text), "int64"), TensorSpec("qformer_attention_mask", (rows, text), "int64")]
        return specs

    def samples(self, hf: Any) -> list[Sample]:
        pixels = self.inputs(hf)[0]
        cases = []
        for i, rows in enumerate((1, 2, 3)):
            case = {self.name: _pixels((rows, *pixels.dims[1:]), 10 + i)}
            if self.text:
                length = (5, 3, 7)[i]
                ids = torch.randint(1, hf.qformer_config.vocab_size, (rows, length), generator=torch.Generator().manual_seed(i))
                mask = torch.ones(rows, length, dtype=torch.long)
                mask[-1, max(1, length - 2) :] = 0  # the last instruction is right-padded
                case |= {"qformer_input_ids": ids, "qformer_attention_mask": mask}
            cases.append(case)
        return cases

    def derivation(self, hf: Any) -> Derivation:
        return Identity(tuple(self.inputs(hf)))

    def first_axis(self, hf: Any) -> Axis:
        return Axis(self.axis, 1, 1, self.max_rows)

    def collate(self, items: list[Feeds]) -> Feeds:
        return _concatenated(items)

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        case = dict(self.samples(hf)[0])
        case[self.name] = _pixels((images, *case[self.name].shape[1:]), 1000 + seed)
        for name in ("qformer_input_ids", "qformer_attention_mask"):
            if name in case:
                case[name] = case[name][:1].expand(images, -1).contiguous()
        return case

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_rows(output, items)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        rows, _, height, width = feeds[self.name].shape
        return f"{rows} {'image' if self.axis == 'batch' else self.axis}{'s' if rows > 1 and self.axis == 'batch' else ''} of {height}x{width}"


@dataclass(frozen=True)
class Crops:
    """Idefics2/Idefics3/SmolVLM: pixel_values [batch, crops, 3, H, W] padded with all-zero
    crops, and pixel_attention_mask [batch, crops, H, W] (optional, as in transformers: all ones
    when not given). `keep_one`: SmolVLM keeps one crop of an all-padding batch; `partial`:
    images of any size up to the tower's, padded to the largest of the batch (Idefics2)."""

    keep_one: bool = False
    partial: bool = False
    names: ClassVar[tuple[str, ...]] = ("pixel_values", "pixel_attention_mask")
    derives: ClassVar[str | None] = "which crops are real (all-zero crops are padding); an all-ones pixel_attention_mask where none is given"

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        size = _side(vision)[0]
        return {"size": size, "patch": vision.patch_size, "any_size": self.partial, "keep_one": self.keep_one, "tokens_per_crop": tokens_per_crop(hf)}

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("crops").inputs(self.params(hf))

    def _partial_height(self, hf: Any) -> int | None:
        """A crop height below the tower's size that is still whole patches (none for a one-patch tower)."""
        size, patch = _side(hf.vision_config)[0], hf.vision_config.patch_size
        height = size // 2 // patch * patch
        return height if self.partial and patch <= height < size else None

    def samples(self, hf: Any) -> list[Sample]:
        size = _side(hf.vision_config)[0]
        partial = self._partial_height(hf)
        cases = []
        for i, (batch, crops) in enumerate(((1, 1), (3, 2), (2, 3))):  # the last, the largest, is the export example
            height = partial if partial and i == 1 else size  # Idefics2 pads to the batch's largest image, any size
            pixels = _pixels((batch, crops, 3, height, size), 20 + i)
            mask = torch.ones(batch, crops, height, size, dtype=torch.long)
            if crops > 1:  # the last sample has one crop fewer: a padding crop
                pixels[-1, -1], mask[-1, -1] = 0, 0
            if partial and i == 2:  # an image smaller than the crop: its lower rows padded
                pixels[0, 0, :, partial:], mask[0, 0, partial:] = 0, 0
            cases.append({"pixel_values": pixels, "pixel_attention_mask": mask})
        return cases

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("crops", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("crops").axes(self.params(hf))["real_crops"]

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        size = _side(hf.vision_config)[0]
        return {"pixel_values": _pixels((images, 1, 3, size, size), 1000 + seed), "pixel_attention_mask": torch.ones(images, 1, size, size, dtype=torch.long)}

    def collate(self, items: list[Feeds]) -> Feeds:
        """Samples padded to the most crops (and largest crop) with zeros, as the processor pads."""
        crops = max(i["pixel_values"].shape[1] for i in items)
        height = max(i["pixel_values"].shape[3] for i in items)
        width = max(i["pixel_values"].shape[4] for i in items)
        pixels = np.zeros((sum(i["pixel_values"].shape[0] for i in items), crops, 3, height, width), np.float32)
        mask = np.zeros(pixels.shape[:2] + pixels.shape[3:], np.int64)
        row = 0
        for item in items:
            b, c, _, h, w = item["pixel_values"].shape
            pixels[row : row + b, :c, :, :h, :w], mask[row : row + b, :c, :h, :w] = item["pixel_values"], item["pixel_attention_mask"]
            row += b
        return {"pixel_values": pixels, "pixel_attention_mask": mask}

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        batch, crops, _, height, width = feeds["pixel_values"].shape
        return f"{batch} sample(s) of {crops} crop(s) of {height}x{width}"


TYPICAL = ((448, 448), (336, 560), (560, 336), (224, 224))  # pixels: square first, then mixed aspect ratios


def typical_sizes(images: int, seed: int = 0) -> list[tuple[int, int]]:
    return [TYPICAL[(seed + i) % len(TYPICAL)] for i in range(images)]


def tokens_per_crop(hf: Any) -> int:
    vision = hf.vision_config
    patches = (_side(vision)[0] // vision.patch_size) ** 2
    if hasattr(hf, "perceiver_config"):
        return int(hf.perceiver_config.resampler_n_latents)
    return int(patches // hf.scale_factor**2)


VIDEO_NAMES = {"pixels": "pixel_values_videos", "grid": "video_grid_thw"}
MAX_VIDEO_PATCHES = 32768  # a 64-frame 448x448 clip at temporal patch 2 (Qwen2.5-VL: 32 x 1024)
MAX_VIDEO_FRAMES = 1024  # temporal patches (attention groups) per call: a long clip of small frames
VIDEO_FRAMES = 16  # a bench request's clip


@dataclass(frozen=True)
class Frames:
    """LLaVA-OneVision and LLaVA-NeXT-Video: pixel_values_videos [clips, frames, 3, H, W] at the
    tower's fixed size. get_video_features pools each frame (OneVision: bilinear to half the grid,
    then a newline per clip; NeXT-Video: its resampler) in transformers' own code; the clips of one
    call share a frame count (one tensor), as transformers takes them."""

    max_clips: int = 16
    max_frames: int = 64
    names: ClassVar[tuple[str, ...]] = ("pixel_values_videos",)
    derives: ClassVar[str | None] = None

    def inputs(self, hf: Any) -> list[TensorSpec]:
        vision = hf.vision_config
        clips = Axis("clips", 1, 1, self.max_clips, samples=(1, 2, 1))
        frames = Axis("frames", 1, 8, self.max_frames, samples=(2, 3, 4))
        return [TensorSpec("pixel_values_videos", (clips, frames, getattr(vision, "num_channels", 3), *_side(vision)))]

    def samples(self, hf: Any) -> list[Sample]:
        shape = self.inputs(hf)[0].dims[2:]
        return [{"pixel_values_videos": _pixels((clips, frames, *shape), 50 + i)} for i, (clips, frames) in enumerate(((1, 2), (2, 3), (1, 4)))]

    def derivation(self, hf: Any) -> Derivation:
        return Identity(tuple(self.inputs(hf)))

    def first_axis(self, hf: Any) -> Axis:
        return Axis("clips", 1, 1, self.max_clips)

    def collate(self, items: list[Feeds]) -> Feeds:
        if len({i["pixel_values_videos"].shape[1] for i in items}) > 1:
            raise InputError("clips of one call must have one frame count (pixel_values_videos is one tensor); send the others in another call")
        return _concatenated(items)

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        shape = self.inputs(hf)[0].dims[2:]
        return {"pixel_values_videos": _pixels((images, VIDEO_FRAMES, *shape), 1000 + seed)}

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        clips = [len(i["pixel_values_videos"]) for i in items]
        rows = len(output) // sum(clips)  # a row per clip (OneVision), or per frame of each (Video-LLaVA)
        return [part.reshape(-1, output.shape[-1]) for part in np.split(output, np.cumsum(clips)[:-1] * rows)]

    def describe(self, hf: Any, feeds: Feeds) -> str:
        clips, frames, _, height, width = feeds["pixel_values_videos"].shape
        return f"{clips} clip(s) of {frames} frames of {height}x{width}"


def temporal_patch_size(vision: Any) -> int:
    """Frames per patch: towers without the setting (LLaVA-OneVision-1.5's Conv2d) take one."""
    return getattr(vision, "temporal_patch_size", None) or 1


@dataclass(frozen=True)
class Patches:
    """Qwen2-VL family and GLM-4V: pixel_values [patches, C*T*P*P] of every image, packed, and
    image_grid_thw [images, 3]; `window` (Qwen2.5-VL) and `taps` (a resampled position table).
    `video`: the same tower on pixel_values_videos and video_grid_thw (frames x rows x columns),
    each temporal patch attending alone; `frames_as_images`: GLM-4V's video path, a grid row per frame."""

    window: bool = False
    taps: str | None = None  # "bilinear" (Qwen3-VL, align_corners) or "bicubic" (GLM-4V)
    video: bool = False
    frames_as_images: bool = False
    temporal_positions: bool = False  # MiniMax-M3-VL: (frame, row, column) for a 3D rotary
    clip_attention: bool = False  # MiniMax-M3-VL: a clip's frames attend to each other
    pairs: bool = False  # ERNIE-4.5-VL: its resampler merges frames in pairs (an image with itself)
    conv: bool = False  # LFM3-VL: a depthwise convolution (conv_kernel_size) over each frame's grid

    @property
    def names(self) -> tuple[str, ...]:
        called = VIDEO_NAMES if self.video else {"pixels": "pixel_values", "grid": "image_grid_thw"}
        return (called["pixels"], called["grid"])

    @property
    def derives(self) -> str:
        parts = (
            ["rotary positions", f"per-{'frame' if self.video and not self.clip_attention else 'image'} attention groups"]
            + (["windows"] if self.window else [])
            + ([f"{self.taps} position-table taps"] if self.taps else [])
            + (["convolution taps within each frame"] if self.conv else [])
        )
        return ", ".join(parts)

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        channels = getattr(vision, "in_channels", getattr(vision, "in_chans", 3))
        params: dict[str, Any] = {"merge": vision.spatial_merge_size, "patch_dim": channels * temporal_patch_size(vision) * vision.patch_size**2}
        if self.window:
            params["window"] = vision.window_size // vision.spatial_merge_size // vision.patch_size
        if self.taps:
            side = int(vision.num_position_embeddings**0.5) if self.taps == "bilinear" else vision.image_size // vision.patch_size
            params["taps"] = {"side": side, "mode": self.taps, "align_corners": self.taps == "bilinear"}
        if self.video:
            params |= {"names": dict(VIDEO_NAMES), "max_patches": MAX_VIDEO_PATCHES, "max_images": MAX_VIDEO_FRAMES} | (
                {"frames_as_images": True} if self.frames_as_images else {}
            )
        params |= {"conv": vision.conv_kernel_size} if self.conv else {}
        return params | {name: True for name in ("temporal_positions", "clip_attention", "pairs") if getattr(self, name)}

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("qwen").inputs(self.params(hf))

    def _packed(self, hf: Any, grids: list[tuple[int, int, int]], seed: int) -> Sample:
        grid = torch.tensor(grids)
        pixels, grid_name = self.names
        return {pixels: _pixels((int(grid.prod(1).sum()), self.params(hf)["patch_dim"]), seed), grid_name: grid}

    def samples(self, hf: Any) -> list[Sample]:
        m = hf.vision_config.spatial_merge_size
        cases = ([(4, 6)], [(2, 2), (5, 3)], [(3, 7), (2, 4), (1, 1)])  # in merged tokens; edges cut windows
        frames: tuple[tuple[int, ...], ...] = ((2,), (1, 3), (2, 1, 4)) if self.video else ((1,), (1, 1), (1, 1, 1))  # temporal patches per clip
        if self.video and self.pairs:  # ERNIE-4.5-VL: clips of frame pairs
            frames = tuple(tuple(2 * ((t + 1) // 2) for t in f) for f in frames)
        return [self._packed(hf, [(t, h * m, w * m) for t, (h, w) in zip(f, shapes)], 30 + i) for i, (f, shapes) in enumerate(zip(frames, cases))]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("qwen", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("qwen").axes(self.params(hf))["patches"]

    def collate(self, items: list[Feeds]) -> Feeds:
        return {name: np.concatenate([i[name] for i in items]) for name in self.names}

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        """`images` images (or clips of VIDEO_FRAMES frames) of typical sizes (448x448 first, then mixed), as the processor grids them."""
        vision = hf.vision_config
        unit, m = vision.patch_size * vision.spatial_merge_size, vision.spatial_merge_size
        t = max(1, VIDEO_FRAMES // temporal_patch_size(vision)) if self.video else 1
        return self._packed(hf, [(t, h // unit * m, w // unit * m) for h, w in typical_sizes(images, seed)], 1000 + seed)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        vision = hf.vision_config
        grid = np.asarray(feeds[self.names[1]])
        if self.video:
            shown = ", ".join(f"{t * temporal_patch_size(vision)}x{h * vision.patch_size}x{w * vision.patch_size}" for t, h, w in grid.tolist())
            return f"{len(grid)} clip(s) of frames x H x W {shown} ({int(grid.prod(1).sum())} patches)"
        shown = ", ".join(f"{h * vision.patch_size}x{w * vision.patch_size}" + (f"x{t} frames" if t > 1 else "") for t, h, w in grid.tolist())
        return f"{len(grid)} image(s) {shown} ({int(grid.prod(1).sum())} patches)"


@dataclass(frozen=True)
class PackedPatches(Patches):
    """PaddleOCR-VL: patches [patches, C, P, P] of every image in raster order (NaViT packing) and
    image_grid_thw; the 2x2 merge happens in the projector, after the encoder."""

    kind: ClassVar[str] = "navit"  # the derivation beside the graph

    @property
    def derives(self) -> str:
        return "rotary positions, per-image attention groups, bilinear position-table taps, 2x2 merge neighbourhoods"

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        side = vision.image_size // vision.patch_size
        taps = {"side": side, "mode": "bilinear", "align_corners": False}
        return {"merge": vision.spatial_merge_size, "patch": vision.patch_size, "channels": vision.num_channels, "taps": taps}

    def _shape(self, hf: Any, patches: int) -> tuple[int, ...]:
        params = self.params(hf)
        return (patches, params["channels"], params["patch"], params["patch"])

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get(self.kind).inputs(self.params(hf))

    def samples(self, hf: Any) -> list[Sample]:
        m = self.params(hf)["merge"]
        cases = []
        for i, shapes in enumerate(([(4, 6)], [(2, 2), (5, 3)], [(3, 7), (2, 4), (1, 1)])):
            grid = torch.tensor([[1, h * m, w * m] for h, w in shapes])
            cases.append({"pixel_values": _pixels(self._shape(hf, int(grid.prod(1).sum())), 30 + i), "image_grid_thw": grid})
        return cases

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of(self.kind, self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get(self.kind).axes(self.params(hf))["patches"]

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        params = self.params(hf)
        unit, m = params["patch"] * params["merge"], params["merge"]
        grid = torch.tensor([[1, h // unit * m, w // unit * m] for h, w in typical_sizes(images, seed)])
        return {"pixel_values": _pixels(self._shape(hf, int(grid.prod(1).sum())), 1000 + seed), "image_grid_thw": grid}


@dataclass(frozen=True)
class MoonViTPatches(PackedPatches):
    """Kimi-K2.5 (MoonViT): PaddleOCR-VL's packing, its square position table resampled bicubically
    (half-pixel), the merge kernel in `merge_kernel_size`; a grid row may hold up to pos_emb_time
    frames (`video`: its video processor's chunks of a clip), pooled into one row of tokens."""

    kind: ClassVar[str] = "moonvit"

    @property
    def derives(self) -> str:
        return "rotary positions, per-row attention groups, bicubic position-table taps, time-table rows, 2x2 merge neighbourhoods averaged over frames"

    def params(self, hf: Any) -> dict[str, Any]:
        vision = hf.vision_config
        taps = {"side": vision.pos_emb_height, "mode": "bicubic", "align_corners": False}
        params = {"merge": vision.merge_kernel_size[0], "patch": vision.patch_size, "channels": 3, "taps": taps, "max_time": vision.pos_emb_time}
        return params | ({"names": dict(VIDEO_NAMES), "max_patches": MAX_VIDEO_PATCHES, "max_images": MAX_VIDEO_FRAMES} if self.video else {})

    def _rows(self, hf: Any, clips: list[tuple[int, int, int]], seed: int) -> Sample:
        """Clips of (frames, rows, columns of patches) cut into rows of at most pos_emb_time frames, as its video processor chunks them."""
        chunk = self.params(hf)["max_time"]
        grid = torch.tensor([(min(chunk, t - start), h, w) for t, h, w in clips for start in range(0, t, chunk)])
        pixels, grid_name = self.names
        return {pixels: _pixels(self._shape(hf, int(grid.prod(1).sum())), seed), grid_name: grid}

    def samples(self, hf: Any) -> list[Sample]:
        if not self.video:
            return super().samples(hf)
        m = self.params(hf)["merge"]
        cases = (((2, 4, 6),), ((1, 2, 2), (3, 5, 3)), ((2, 3, 7), (5, 2, 4), (4, 1, 1)))  # frames, merged rows, merged columns
        return [self._rows(hf, [(t, h * m, w * m) for t, h, w in shapes], 30 + i) for i, shapes in enumerate(cases)]

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        if not self.video:
            return super().request(hf, images, seed)
        params = self.params(hf)
        unit, m = params["patch"] * params["merge"], params["merge"]
        return self._rows(hf, [(VIDEO_FRAMES, h // unit * m, w // unit * m) for h, w in typical_sizes(images, seed)], 1000 + seed)


@dataclass(frozen=True)
class NaFlex:
    """LFM2-VL (SigLIP2 NaFlex): pixel_values [tiles, patches, C*P*P] padded to the batch's patch
    count, pixel_attention_mask [tiles, patches] and spatial_shapes [tiles, 2] (rows, columns)."""

    max_patches: int = 4096
    names: ClassVar[tuple[str, ...]] = ("pixel_values", "pixel_attention_mask", "spatial_shapes")
    derives: ClassVar[str | None] = "the patches each pixel-unshuffled token concatenates"

    def params(self, hf: Any) -> dict[str, Any]:
        vision, factor = hf.vision_config, hf.downsample_factor
        patch_dim = vision.num_channels * vision.patch_size**2
        return {"factor": factor, "patch_dim": patch_dim, "max_patches": self.max_patches, "opt_patches": vision.num_patches}

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("naflex").inputs(self.params(hf))

    def _tiles(self, hf: Any, shapes: list[tuple[int, int]], seed: int) -> Sample:
        """Tiles of (rows, columns) patches, padded to the most patches (a multiple of factor^2), as the processor pads."""
        params = self.params(hf)
        unit = params["factor"] ** 2
        patches = -(-max(h * w for h, w in shapes) // unit) * unit
        pixels = torch.zeros(len(shapes), patches, params["patch_dim"])
        mask = torch.zeros(len(shapes), patches, dtype=torch.long)
        for j, (h, w) in enumerate(shapes):
            pixels[j, : h * w], mask[j, : h * w] = _pixels((h * w, params["patch_dim"]), seed + j), 1
        return {"pixel_values": pixels, "pixel_attention_mask": mask, "spatial_shapes": torch.tensor(shapes)}

    def samples(self, hf: Any) -> list[Sample]:
        f = hf.downsample_factor
        cases = ([(2, 3)], [(1, 1), (3, 2)], [(3, 1), (1, 2), (2, 2)])  # in tokens (factor x factor patches)
        return [self._tiles(hf, [(h * f, w * f) for h, w in shapes], 60 + 3 * i) for i, shapes in enumerate(cases)]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("naflex", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("naflex").axes(self.params(hf))["tiles"]

    def collate(self, items: list[Feeds]) -> Feeds:
        patches = max(i["pixel_values"].shape[1] for i in items)
        pixels = np.zeros((sum(len(i["pixel_values"]) for i in items), patches, items[0]["pixel_values"].shape[2]), np.float32)
        mask = np.zeros(pixels.shape[:2], np.int64)
        row = 0
        for item in items:
            b, n = item["pixel_attention_mask"].shape
            pixels[row : row + b, :n], mask[row : row + b, :n] = item["pixel_values"], item["pixel_attention_mask"]
            row += b
        return {"pixel_values": pixels, "pixel_attention_mask": mask, "spatial_shapes": np.concatenate([i["spatial_shapes"] for i in items])}

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        unit = hf.vision_config.patch_size * hf.downsample_factor
        shapes = [(h // unit * hf.downsample_factor, w // unit * hf.downsample_factor) for h, w in typical_sizes(images, seed)]
        return self._tiles(hf, shapes, 1000 + seed)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        shapes = np.asarray(feeds["spatial_shapes"]) * hf.vision_config.patch_size
        return f"{len(shapes)} tile(s) {', '.join(f'{h}x{w}' for h, w in shapes.tolist())} ({int(np.asarray(feeds['pixel_attention_mask']).sum())} patches)"


@dataclass(frozen=True)
class Sized:
    """Mistral 3: pixel_values [images, 3, H, W] padded to the largest image, image_sizes [images, 2]."""

    names: ClassVar[tuple[str, ...]] = ("pixel_values", "image_sizes")
    derives: ClassVar[str | None] = "kept patches, rotary positions, per-image attention groups, 2x2 merge neighbourhoods"

    def params(self, hf: Any) -> dict[str, Any]:
        return {"patch": hf.vision_config.patch_size, "merge": hf.spatial_merge_size, "max_side": max(hf.vision_config.image_size, 64)}

    def inputs(self, hf: Any) -> list[TensorSpec]:
        return DERIVATIONS.get("pixtral").inputs(self.params(hf))

    def _padded(self, hf: Any, shapes: list[tuple[int, int]], seed: int) -> Sample:
        """Images of `shapes` (in merged tokens) padded bottom-right to the largest, as the processor pads."""
        unit = hf.vision_config.patch_size * hf.spatial_merge_size
        sizes = torch.tensor([[h * unit, w * unit] for h, w in shapes])
        pixels = torch.zeros(len(shapes), 3, int(sizes[:, 0].max()), int(sizes[:, 1].max()))
        for j, (h, w) in enumerate(sizes.tolist()):
            pixels[j, :, :h, :w] = _pixels((3, h, w), seed + j)
        return {"pixel_values": pixels, "image_sizes": sizes}

    def samples(self, hf: Any) -> list[Sample]:
        top = max(1, self.params(hf)["max_side"] // (hf.vision_config.patch_size * hf.spatial_merge_size))  # merged tokens per side the tower takes
        cases = ([(2, 3)], [(3, 2), (1, 4)], [(4, 4), (2, 1), (1, 2)])
        return [self._padded(hf, [(min(h, top), min(w, top)) for h, w in shapes], 40 + 3 * i) for i, shapes in enumerate(cases)]

    def derivation(self, hf: Any) -> Derivation:
        return Derived.of("pixtral", self.params(hf))

    def first_axis(self, hf: Any) -> Axis:
        return DERIVATIONS.get("pixtral").axes(self.params(hf))["patches"]

    def collate(self, items: list[Feeds]) -> Feeds:
        """Images padded to the largest with zeros (bottom and right), as the processor pads."""
        height = max(i["pixel_values"].shape[2] for i in items)
        width = max(i["pixel_values"].shape[3] for i in items)
        pixels = np.zeros((sum(i["pixel_values"].shape[0] for i in items), 3, height, width), np.float32)
        row = 0
        for item in items:
            b, _, h, w = item["pixel_values"].shape
            pixels[row : row + b, :, :h, :w] = item["pixel_values"]
            row += b
        return {"pixel_values": pixels, "image_sizes": np.concatenate([i["image_sizes"] for i in items])}

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        unit = hf.vision_config.patch_size * hf.spatial_merge_size
        return self._padded(hf, [(h // unit, w // unit) for h, w in typical_sizes(images, seed)], 1000 + seed)

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_tokens(output, items, derivation)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        sizes = np.asarray(feeds["image_sizes"])
        patches = int((sizes // hf.vision_config.patch_size).prod(1).sum())
        return f"{len(sizes)} image(s) {', '.join(f'{h}x{w}' for h, w in sizes.tolist())} ({patches} patches)"


@dataclass(frozen=True)
class Tiles:
    """Llama 3.2 Vision: pixel_values [batch, images, tiles, 3, H, W] (tiles = max_num_tiles),
    aspect_ratio_ids [batch, images] and aspect_ratio_mask [batch, images, tiles]."""

    names: ClassVar[tuple[str, ...]] = ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")
    derives: ClassVar[str | None] = None

    def inputs(self, hf: Any) -> list[TensorSpec]:
        vision = hf.vision_config
        batch, images = Axis("batch", 1, 1, 16, samples=(1, 2, 1)), Axis("images", 1, 1, 8, samples=(1, 1, 2))
        tiles = vision.max_num_tiles
        return [
            TensorSpec("pixel_values", (batch, images, tiles, 3, vision.image_size, vision.image_size)),
            TensorSpec("aspect_ratio_ids", (batch, images), "int64"),
            TensorSpec("aspect_ratio_mask", (batch, images, tiles), "int64"),
        ]

    def samples(self, hf: Any) -> list[Sample]:
        vision = hf.vision_config
        ratios = [tuple(r) for r in vision.supported_aspect_ratios]
        cases = []
        for i, (batch, images) in enumerate(((1, 1), (2, 1), (1, 2))):
            ids = (torch.arange(batch * images).reshape(batch, images) + i) % len(ratios) + 1
            mask = torch.zeros(batch, images, vision.max_num_tiles, dtype=torch.long)
            pixels = _pixels((batch, images, vision.max_num_tiles, 3, vision.image_size, vision.image_size), 50 + i)
            for b in range(batch):
                for m in range(images):
                    used = ratios[int(ids[b, m]) - 1][0] * ratios[int(ids[b, m]) - 1][1]
                    mask[b, m, :used] = 1
                    pixels[b, m, used:] = 0  # the processor pads missing tiles with zeros
            cases.append({"pixel_values": pixels, "aspect_ratio_ids": ids, "aspect_ratio_mask": mask})
        return cases

    def derivation(self, hf: Any) -> Derivation:
        return Identity(tuple(self.inputs(hf)))

    def first_axis(self, hf: Any) -> Axis:
        return self.inputs(hf)[0].dims[0]  # type: ignore[return-value]

    def collate(self, items: list[Feeds]) -> Feeds:
        return _concatenated(items)

    def request(self, hf: Any, images: int, seed: int = 0) -> Sample:
        vision = hf.vision_config
        full = max(range(len(vision.supported_aspect_ratios)), key=lambda i: vision.supported_aspect_ratios[i][0] * vision.supported_aspect_ratios[i][1])
        used = vision.supported_aspect_ratios[full][0] * vision.supported_aspect_ratios[full][1]
        mask = torch.zeros(images, 1, vision.max_num_tiles, dtype=torch.long)
        mask[:, :, :used] = 1
        pixels = _pixels((images, 1, vision.max_num_tiles, 3, vision.image_size, vision.image_size), 1000 + seed) * mask[..., None, None, None]
        return {"pixel_values": pixels, "aspect_ratio_ids": torch.full((images, 1), full + 1), "aspect_ratio_mask": mask}

    def per_item(self, output: np.ndarray, items: list[Feeds], derivation: Derivation) -> list[np.ndarray]:
        return _by_rows(output, items)

    def describe(self, hf: Any, feeds: Feeds) -> str:
        batch, images, tiles, _, size, _ = feeds["pixel_values"].shape
        return f"{batch * images} image(s) of {tiles} tiles of {size}x{size}"
