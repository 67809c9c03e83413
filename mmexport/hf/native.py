"""Native-resolution towers (the Qwen-style ones, declared by a QwenStyle; Pixtral) in a form that
exports: transformers' own modules (patch embedding, rotary, norms, projections, MLPs, mergers)
driven with the grid tensors mmexport derives (mmexport.derivations). Attention over many images is
gathered into padded groups (one per frame, window or image) instead of transformers' Python
split by cu_seqlens: every shape then follows the inputs, with no data-dependent loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .attention import within_groups
from .model import module_path


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, rotary: tuple, pick: Callable[[int], tuple], after: Callable[[int, torch.Tensor], None]) -> torch.Tensor:
    """transformers' own blocks, each attending within the groups `pick` gives it (in within_groups)."""
    unused = torch.zeros(2, dtype=torch.int32)  # cu_seqlens: the groups replace it
    for i, block in enumerate(blocks):
        x = block(x, cu_seqlens=unused, position_embeddings=rotary, max_seqlen=1, mmexport_groups=pick(i))
        after(i, x)
    return x


GRID_NAMES = ("pixel_values", "position_ids", "frame_index", "frame_valid", "frame_inverse")
WINDOW_NAMES = ("window_index", "window_valid", "window_inverse")
TAP_NAMES = ("pos_index", "pos_weight")


@dataclass(frozen=True)
class QwenStyle:
    """How a Qwen-style native-resolution tower departs from Qwen2-VL's, declared by its family
    (no dispatch on model types): the export form is built from this, and so is the layout."""

    windows: bool = False  # Qwen2.5-VL: window attention outside fullatt_block_indexes
    taps: str | None = None  # a learned position table resampled per grid: "bilinear" (align corners) or "bicubic"
    table: str = "pos_embed"  # where that table sits in the tower
    deepstack: bool = False  # Qwen3-VL: merged features of early blocks, as more outputs
    post_conv_norm: bool = False  # GLM-4V: a norm right after the patch embedding
    downsample: bool = False  # GLM-4V: post-norm, a 2x2 convolution, then the merger
    tower: str = "visual"  # where the tower sits in the model
    projector: str | None = None  # a projection the model applies after the tower's merger (HyperCLOVA X)
    frames_as_images: bool = False  # GLM-4V's video path: the tower reads each frame as its own grid row
    class_token: bool = False  # LLaVA-OneVision-1.5: a learned token per frame, attending with it, dropped before the merger
    resampler: str | None = None  # ERNIE-4.5-VL: no merger; the tower's final norm, then the model's resampler (frames in pairs)

    @property
    def names(self) -> tuple[str, ...]:
        """The graph's inputs, in the order mmexport.derivations.qwen derives them."""
        return GRID_NAMES + (WINDOW_NAMES if self.windows else ()) + (TAP_NAMES if self.taps else ()) + (("pair_index",) if self.resampler else ())

    def __call__(self, model: nn.Module) -> nn.Module:
        """The export form of a folder's vision side."""
        after = model.get_submodule(module_path(model, self.projector or self.resampler)) if self.projector or self.resampler else None
        return QwenTower(model.get_submodule(module_path(model, self.tower)), self, after).eval()


class QwenTower(nn.Module):
    """pixel_values [patches, C*T*P*P] and the derived grid tensors -> merged tokens (and
    deepstack features): the forward of transformers' vision model, minus the Python that
    depends on the grid."""

    def __init__(self, visual: nn.Module, style: QwenStyle, projector: nn.Module | None = None):
        super().__init__()
        self.visual, self.style, self.projector = visual, style, projector
        self.full = set(getattr(visual, "fullatt_block_indexes", None) or ()) if style.windows else None
        self.deepstack = list(getattr(visual, "deepstack_visual_indexes", None) or ()) if style.deepstack else []

    def forward(self, *inputs: torch.Tensor) -> Any:
        with within_groups(self.visual.config):
            out = self.run(dict(zip(self.style.names, inputs)))
        return out if len(out) > 1 else out[0]

    def run(self, feeds: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        visual = self.visual
        x = visual.patch_embed(feeds["pixel_values"])
        if self.style.post_conv_norm:
            x = visual.post_conv_layernorm(x)
        if self.style.taps:  # a learned table resampled to each grid, as gathers (taps derived beside)
            table = visual.get_submodule(self.style.table).weight
            x = x + (table.float()[feeds["pos_index"]] * feeds["pos_weight"][:, :, None]).sum(1).to(x.dtype)
        rotary = visual.rotary_pos_emb(x, feeds["position_ids"])
        frames = (feeds["frame_index"], feeds["frame_valid"], feeds["frame_inverse"])
        patches = x.shape[0]
        if self.style.class_token:
            x, rotary, frames = self._with_class_tokens(x, rotary, frames)
        windows = (feeds["window_index"], feeds["window_valid"], feeds["window_inverse"]) if self.full is not None else frames
        stacked: list[torch.Tensor] = []

        def after(i: int, hidden: torch.Tensor) -> None:
            if i in self.deepstack:
                stacked.append(visual.deepstack_merger_list[self.deepstack.index(i)](hidden))

        full = self.full
        x = run_blocks(visual.blocks, x, rotary, lambda i: frames if full is None or i in full else windows, after)
        return (self._merge(x[:patches], feeds.get("pair_index")), *stacked)

    def _with_class_tokens(self, x: torch.Tensor, rotary: tuple, frames: tuple) -> tuple[torch.Tensor, tuple, tuple]:
        """Each frame's class token appended after all patches (transformers prepends it to the
        frame: the same numbers, as every op outside attention is per token) and joined to its
        frame's group; then the tower's pre-norm over all of them."""
        tokens = self.visual.cls_embeddings
        index, valid, inverse = frames
        count, length = index.shape
        own = torch.arange(count, dtype=index.dtype, device=index.device)
        index = torch.cat([(own + x.shape[0])[:, None], index], 1)  # the class tokens' rows, once appended
        x = torch.cat([x, tokens.class_embedding.to(x.dtype)[None].expand(count, -1)])
        angles = torch.cat((tokens.class_pos_emb, tokens.class_pos_emb), dim=-1)
        rotary = tuple(torch.cat([r, f(angles.to(r.dtype)).expand(count, -1)]) for r, f in zip(rotary, (torch.cos, torch.sin)))
        valid = torch.cat([torch.ones_like(valid[:, :1]), valid], 1)
        inverse = torch.cat([inverse + inverse // length + 1, own * (length + 1)])
        return self.visual.pre_layernorm(x), rotary, (index, valid, inverse)

    def _merge(self, x: torch.Tensor, pairs: torch.Tensor | None = None) -> torch.Tensor:
        visual = self.visual
        if pairs is not None:
            return self._resample(visual.ln(x), pairs)
        if self.style.downsample:
            m = visual.spatial_merge_size
            x = visual.post_layernorm(x).view(-1, m, m, x.shape[-1]).permute(0, 3, 1, 2)
            x = visual.merger(visual.downsample(x).view(-1, visual.config.out_hidden_size))
        else:
            x = visual.merger(x)
        return self.projector(x) if self.projector is not None else x

    def _resample(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """ERNIE-4.5-VL's resampler: each 2x2 block's patches side by side (the processor packs them
        block-major), its spatial MLP, the derived frame pairs side by side, its temporal MLP, then
        its projection and norm."""
        assert self.projector is not None
        resampler, unit = self.projector, self.visual.spatial_merge_size**2
        x = resampler.spatial_linear(x.reshape(-1, x.shape[-1] * unit))
        x = resampler.temporal_linear(torch.cat([x[pairs[:, 0]], x[pairs[:, 1]]], dim=-1))
        return resampler.after_norm(resampler.mlp(x))


class PixtralSide(nn.Module):
    """Mistral 3 (Pixtral tower): padded images and the derived patch, position, group and merge
    indices -> the projector's tokens for every image, concatenated (what get_image_features splits)."""

    def __init__(self, tower: nn.Module, projector: nn.Module, layer: int):
        super().__init__()
        self.tower, self.projector, self.layer = tower, projector, layer

    def forward(self, pixel_values, patch_index, position_ids, image_index, image_valid, image_inverse, merge_index):
        tower, projector = self.tower, self.projector
        x = tower.patch_conv(pixel_values.to(tower.patch_conv.weight.dtype))  # [images, D, rows, cols]
        x = tower.ln_pre(x.flatten(2).transpose(1, 2).flatten(0, 1)[patch_index])  # the valid patches, packed
        rotary = tower.patch_positional_embedding(x, position_ids)
        groups = (image_index, image_valid, image_inverse)
        states = [x]
        with within_groups(tower.config):  # transformers' own layers, attending within each image
            for layer in tower.transformer.layers:
                x = layer(x[None], attention_mask=None, position_embeddings=rotary, mmexport_groups=groups)[0]
                states.append(x)
        x = projector.norm(states[self.layer])
        blocks = x[merge_index]  # [tokens, s*s, D]: the unfold's 2x2 neighbours, channel-major after the transpose
        x = projector.patch_merger.merging_layer(blocks.transpose(1, 2).flatten(1))
        return projector.linear_2(projector.act(projector.linear_1(x)))


@dataclass(frozen=True)
class PixtralStyle:
    """Where a Pixtral-tower family keeps its tower and projector, and which hidden state it reads
    (None: the config's vision_feature_layer; -1: the last, for families without that setting)."""

    tower: str = "vision_tower"
    projector: str = "multi_modal_projector"
    layer: int | None = None

    def __call__(self, model: nn.Module) -> nn.Module:
        layer = self.layer if self.layer is not None else model.config.vision_feature_layer
        if not isinstance(layer, int) or layer == 0:
            from ..errors import UsageError

            raise UsageError(f"vision_feature_layer {layer!r} is not supported for {model.config.model_type} (transformers itself fails on a list or 0)")
        tower, projector = (model.get_submodule(module_path(model, name)) for name in (self.tower, self.projector))
        return PixtralSide(tower, projector, layer).eval()


class NaViTSide(nn.Module):
    """PaddleOCR-VL: transformers' own vision model over packed patches, fed the positions, taps and
    groups derived beside the graph as its precomputed arguments (attending within each image),
    then its projector, with the 2x2 neighbourhoods gathered instead of a per-image reshape."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.visual = model.get_submodule(module_path(model, "visual"))
        self.projector = model.get_submodule(module_path(model, "projector"))

    def forward(self, pixel_values, position_ids, frame_index, frame_valid, frame_inverse, pos_index, pos_weight, merge_index):
        unused = torch.zeros(2, dtype=torch.int32)  # cu_seqlens: the groups replace it
        groups = (frame_index, frame_valid, frame_inverse)
        with within_groups(self.visual.config):
            states = self.visual(
                pixel_values[None],
                position_ids=position_ids,
                interp_indices=pos_index,
                interp_weights=pos_weight,
                cu_seqlens=unused,
                max_seqlen=1,
                mmexport_groups=groups,
            ).last_hidden_state
        projector = self.projector
        x = projector.pre_norm(states.reshape(-1, states.shape[-1]))[merge_index].flatten(1)  # [tokens, 4 * D], patch-major
        return projector.linear_2(projector.act(projector.linear_1(x)))


class OwnTowerSide(nn.Module):
    """MiniMax-M3-VL: transformers' own vision tower over the packed patches (block-major, as the
    processor packs them), fed the positions and attention groups derived beside the graph as its
    precomputed arguments, then its projector (whose merge is a reshape of that order)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.tower = model.get_submodule(module_path(model, "vision_tower"))
        self.projector = model.get_submodule(module_path(model, "multi_modal_projector"))

    def forward(self, pixel_values, position_ids, frame_index, frame_valid, frame_inverse):
        unused = torch.zeros(2, dtype=torch.int32)  # grid_thw and cu_seqlens: positions and groups replace them
        with within_groups(self.tower.config):
            states = self.tower(
                pixel_values,
                grid_thw=unused,
                position_ids=position_ids,
                cu_seqlens=unused,
                max_seqlen=1,
                mmexport_groups=(frame_index, frame_valid, frame_inverse),
            ).last_hidden_state
        return self.projector(states.reshape(-1, states.shape[-1]))


def own_tower_side(model: nn.Module) -> nn.Module:
    return OwnTowerSide(model).eval()


class MoonViTSide(nn.Module):
    """Kimi-K2.5: its patch embedding with the bicubic position taps as a gather (transformers'
    embedding_bag exports as a loop) and its time table's derived rows, transformers' own rotary
    and blocks attending within each grid row (an image, or a chunk of frames), its final norm,
    then its temporal merge (each 2x2 neighbourhood averaged over the row's frames, by derived
    indices and weights) into its projector."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.tower = model.get_submodule(module_path(model, "vision_tower"))
        self.projector = model.get_submodule(module_path(model, "mm_projector"))

    def forward(self, pixel_values, position_ids, frame_index, frame_valid, frame_inverse, pos_index, pos_weight, time_index, merge_index, merge_weight):
        tower = self.tower
        x = tower.patch_embed.proj(pixel_values).flatten(1)
        table = tower.patch_embed.pos_emb.position_embeddings.flatten(0, 1)
        positions = (table[pos_index] * pos_weight[:, :, None].to(table.dtype)).sum(1)
        x = x + (positions + tower.patch_embed.pos_emb.time_position_embeddings[time_index]).to(x.dtype)
        rotary = tower.rotary_emb(x, position_ids)
        with within_groups(tower.config):
            x = run_blocks(tower.layers, x, rotary, lambda i: (frame_index, frame_valid, frame_inverse), lambda i, h: None)
        dtype, x = x.dtype, tower.final_layernorm(x).float()  # transformers pools in fp32
        x = torch.cat([x, x.new_zeros(1, x.shape[-1])])[merge_index]  # [tokens, 4, frames, D]; padding reads the zero row
        pooled = (x * merge_weight[:, None, :, None]).sum(2).to(dtype)
        return self.projector(pooled).squeeze(1)


def moonvit_side(model: nn.Module) -> nn.Module:
    return MoonViTSide(model).eval()


def navit_side(model: nn.Module) -> nn.Module:
    return NaViTSide(model).eval()


class NaFlexSide(nn.Module):
    """LFM2-VL: transformers' own SigLIP2 tower over the padded tiles, then the pixel unshuffle as a
    gather of each token's factor x factor patches (derived beside the graph), then its projector."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.tower = model.get_submodule(module_path(model, "vision_tower"))
        self.projector = model.get_submodule(module_path(model, "multi_modal_projector"))

    def forward(self, pixel_values, pixel_attention_mask, spatial_shapes, unshuffle_index):
        states = self.tower(pixel_values=pixel_values, pixel_attention_mask=pixel_attention_mask, spatial_shapes=spatial_shapes).last_hidden_state
        x = states.reshape(-1, states.shape[-1])[unshuffle_index].flatten(1)  # [tokens, factor^2 * D], (row, column, channel)
        projector = self.projector
        if projector.use_layer_norm:
            x = projector.layer_norm(x)
        return projector.linear_2(projector.act(projector.linear_1(x)))


def naflex_side(model: nn.Module) -> nn.Module:
    return NaFlexSide(model).eval()


def _deepstack_outputs(hf: Any) -> tuple[str, ...]:
    return ("image_embeds", *(f"deepstack_{i}" for i in range(len(hf.vision_config.deepstack_visual_indexes))))


def qwen_family(model_types: tuple[str, ...], style: QwenStyle, **fields: Any) -> Any:
    """A family whose vision side is a Qwen-style tower: its layout and export form follow the style."""
    from .family import Family, image_embeds
    from .layouts import Patches

    after = style.projector or style.resampler
    declared: dict[str, Any] = dict(parts=(style.tower, *((after,) if after else ())), connector=("merger",), pooled="split")
    declared |= dict(outputs=_deepstack_outputs if style.deepstack else image_embeds)
    pairs = style.resampler is not None
    video = Patches(window=style.windows, taps=style.taps, video=True, frames_as_images=style.frames_as_images, pairs=pairs)
    return Family(model_types, images=Patches(window=style.windows, taps=style.taps, pairs=pairs), video=video, vision=style, **(declared | fields))
