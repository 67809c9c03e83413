"""A model family as a declaration: where its vision parts sit in the transformers model, the
layout of what its processor returns, and the few places it departs from the shared path
(transformers' own get_image_features exported as it is; its connector module as it is).
The registry (hf/__init__.py) is built from these declarations: a family is declared once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from torch import nn

from .layouts import ImageLayout, Pixels

Build = Callable[[nn.Module], nn.Module]  # the loaded transformers model -> a module
Pooled = Literal[
    "tensor", "stack", "split", "cat"
]  # how get_image_features hands features on: a tensor, a list of rows, a list per image (split by the derivation, or as one)


def image_embeds(hf: Any) -> tuple[str, ...]:
    return ("image_embeds",)


@dataclass(frozen=True)
class Family:
    model_types: tuple[str, ...]
    images: ImageLayout = field(default_factory=Pixels)  # the processor's tensors (hf/layouts.py)
    video: ImageLayout | None = None  # the video processor's tensors (--video)
    # where get_video_features pools frames in its own way (LLaVA-OneVision), it is exported as transformers
    # writes it, its pooler output handed on so; None: the video path is the image tower's (Qwen)
    video_pooled: Pooled | None = None
    video_parts: tuple[str, ...] = ()  # what the video path reads beyond `parts`, where the model has it (OneVision's image_newline)
    parts: tuple[str, ...] = ("vision_tower", "multi_modal_projector")  # what the vision side reads (module names)
    connector: tuple[str, ...] | None = ("multi_modal_projector",)  # the connector-only graph's module(s); None: vision side only
    vision: Build | None = None  # an exportable vision side, where get_image_features itself is not
    reference: Build | None = None  # transformers' path where there is no get_image_features
    pooled: Pooled = "tensor"
    outputs: Callable[[Any], tuple[str, ...]] = image_embeds  # the graph's output names, from the config
    settings: tuple[str, ...] = ()  # config.json keys the artifact record keeps
    connector_inputs: Callable[[nn.Module, dict], dict] | None = None  # (model, sample) -> the connector's inputs, where no hook sees them
    connector_module: Build | None = None  # the connector-only graph where it is not one transformers module
    attach_vision: Callable[[nn.Module, nn.Module], None] | None = None  # where the forward does not call get_image_features
    attach_connector: Callable[[nn.Module, nn.Module], None] | None = None  # where the connector is not one module
    attach: bool = True  # False: transformers' own forward fails for this family (nothing to attach to)
    attach_why_not: str | None = None  # why a vision-side artifact cannot be attached (the connector's can)
    # the forward's argument that takes precomputed features (Llama 3.2 Vision: cross_attention_states); None: none (Phi-4-multimodal)
    features_as: str | None = "mm_encoder_outputs"
    video_timestamps: bool = False  # vLLM takes its video embeddings with each temporal patch's time (Qwen3-VL)
    renamed: tuple[tuple[str, str], ...] = ()  # (the processor's name, the one get_image_features takes) where they differ
    auto_class: str = "AutoModelForImageTextToText"  # the transformers auto class that builds the model (Phi-4-multimodal: AutoModelForCausalLM)
    notes: tuple[str, ...] = ()
    declared: bool = True  # False: no declaration, transformers' own path (mmexport.hf.automatic)

    def layout(self, part: str) -> ImageLayout:
        """The tensors a part takes: the video processor's for "video", the image processor's otherwise."""
        if part == "video":
            assert self.video is not None
            return self.video
        return self.images
