"""Options several commands take, and the parsers of their values."""

from __future__ import annotations

import typer

from .. import precisions
from ..precisions import QuantizeOptions

PRECISION_CHOICES = ("fp32", *precisions.names())

ConnectorOpt = typer.Option(None, "--connector", "-c", help="Connector name (see `mmexport list`); or --model.")

ModelOpt = typer.Option(None, "--model", "-m", help="A Hugging Face model folder: its connector (or with --vision-tower its vision side), dims and weights.")

VisionTowerOpt = typer.Option(False, "--vision-tower", help="With --model: the whole vision side, from pixel_values to the LLM's embeddings.")
VideoOpt = typer.Option(
    False, "--video", help="With --model --vision-tower: the video side, from the video processor's tensors (pixel_values_videos, video_grid_thw)."
)

PresetOpt = typer.Option(None, "--preset", "-p", help="Released-model dims; default: the connector's first preset (dims then come from --weights).")

WeightsOpt = typer.Option(None, "--weights", "-w", help=".safetensors, .bin/.pt (weights only) or a Hugging Face folder.")

DeviceOpt = typer.Option("cpu", "--device", help="ONNX Runtime device for the parity gate: cpu or cuda.")

JsonOpt = typer.Option(False, "--json", help="Print the result as JSON on stdout (for CI).")

MaxRelOpt = typer.Option(None, "--max-rel", help="Parity limit on max abs error / max |reference|.")

MinCosOpt = typer.Option(None, "--min-cosine", help="Parity limit on cosine similarity.")

MinTokenOpt = typer.Option(None, "--min-token-cosine", help="Parity limit on the 1st percentile of the per-token cosine.")

ShapeOpt = typer.Option(None, "--shape", help="Parity shape as AXIS=SIZE,... (repeatable), e.g. batch=2,tokens=1001.")

CalibOpt = typer.Option(
    None, "--calib", help="Calibration data: .npz (keyed by input), .npy, a folder of them, a folder of images (a vision side), or synthetic[:FAMILY]."
)

MethodOpt = typer.Option(None, "--method", help="Activation ranges: minmax, mse, percentile or entropy; default: searched.")

PercentileOpt = typer.Option(99.99, "--percentile", help="Percentile for --method percentile.")

SamplesOpt = typer.Option(64, "--samples", min=1, help="Calibration samples to read (some are held out for the gate).")

SmoothOpt = typer.Option(None, "--smooth", min=0.0, max=1.0, help="SmoothQuant alpha; 0 turns it off; default: searched.")

IoOpt = typer.Option("fp32", "--io", help="Input/output dtype of the variant: fp32 or fp16.")

HighPrecisionOpt = typer.Option(None, "--high-precision", help="Dtype of what is not int8/fp8: fp16 or fp32; default: what --target wants.")

TargetOpt = typer.Option("tensorrt", "--target", help="What the variant is for: tensorrt (fp16 around int8/fp8) or cpu (ONNX Runtime, fp32 around).")


def shapes(values: list[str] | None) -> list[dict[str, int]] | None:
    if not values:
        return None
    shapes = []
    for value in values:
        try:
            shapes.append({k.strip(): int(v) for k, v in (item.split("=") for item in value.split(","))})
        except ValueError:
            raise typer.BadParameter(f"'{value}' is not AXIS=SIZE,...", param_hint="--shape") from None
    return shapes


def precision(value: str) -> str:
    if value not in PRECISION_CHOICES:
        raise typer.BadParameter(f"'{value}' is not one of {', '.join(PRECISION_CHOICES)}", param_hint="--precision")
    return value


def quantize_options(calib, method, percentile=99.99, samples=64, smooth=None, io="fp32", high_precision=None, target="tensorrt") -> QuantizeOptions:
    return QuantizeOptions(calib, method, percentile, samples, smooth, io, high_precision, target)
