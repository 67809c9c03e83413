"""The Python API: one function per command; the CLI parses arguments, calls these and prints.

import mmexport
exported = mmexport.export("qformer", weights="blip2/", output="q.onnx")
variant = mmexport.quantize("q.onnx", "int8", mmexport.QuantizeOptions(calib="feats.npz"))
record, report = mmexport.check(variant.path)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .bench import bench
from .checking import check
from .engines import BuildResult
from .engines import build as build_engine
from .errors import UsageError
from .exporter import ExportResult, export
from .hf import register_family
from .hf.attach import attach
from .hf.encoder_outputs import encoder_outputs
from .precisions import QuantizeOptions
from .runtime import load
from .serving.server import serve
from .serving.triton import write_repository as write_triton
from .subjects import Subject
from .variants import VariantResult, quantize

Step = Callable[[str], None]


@dataclass
class Made:
    """What `make` produced: the gated fp32 export, its variant, and the engine if asked."""

    exported: ExportResult
    variant: VariantResult | None = None
    engine: BuildResult | None = None

    @property
    def final(self) -> Path:
        return (self.variant or self.exported).path


def make(
    connector: str | None = None,
    precision: str = "fp32",
    options: QuantizeOptions | None = None,
    engine: dict[str, Any] | None = None,
    step: Step = lambda message: None,
    model: str | Path | None = None,
    vision_tower: bool = False,
    video: bool = False,
    **export_args: Any,
) -> Made:
    """Export, then the variant (`precision` other than fp32), then the engine (`engine`
    holds build_engine's keyword arguments): the one-shot forms of `onnx` and `trt`.
    `model` (a Hugging Face folder) replaces `connector`, preset and weights; with `vision_tower`
    the graph starts from pixel_values (the whole vision side); with `video` too, from the video
    processor's tensors."""
    made = Made(export(connector, step=step, subject=subject_for(connector, model, export_args, vision_tower, video), **export_args))
    if precision != "fp32":
        made.variant = quantize(made.exported.path, precision, options, weights=export_args.get("weights"), step=step)
    if engine is not None:
        made.engine = build_engine(made.final, **engine)
    return made


def subject_for(connector: str | None, model: str | Path | None, args: dict[str, Any], vision_tower: bool = False, video: bool = False) -> Subject | None:
    """The subject of a --model export (None: the connector's, resolved by export)."""
    if (connector is None) == (model is None):
        raise UsageError("give --connector or --model (a Hugging Face folder), one of them")
    if vision_tower and model is None:
        raise UsageError("--vision-tower exports a model folder's vision side; give --model DIR")
    if video and not vision_tower:
        raise UsageError("--video exports a model folder's video side: give --model DIR --vision-tower --video")
    if model is None:
        return None
    for option in ("preset", "weights", "layer"):
        if args.get(option) is not None:
            raise UsageError(f"--model reads dims and weights from the folder; drop --{option}")
    from .hf.subject import connector_part, side_part

    return side_part(model, "video" if video else "vision") if vision_tower else connector_part(model)


__all__ = [
    "BuildResult",
    "ExportResult",
    "Made",
    "QuantizeOptions",
    "VariantResult",
    "attach",
    "bench",
    "build_engine",
    "check",
    "encoder_outputs",
    "export",
    "load",
    "make",
    "quantize",
    "register_family",
    "serve",
    "write_triton",
]
