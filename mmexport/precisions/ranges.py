"""Activation ranges from calibration samples: the |x| histogram of each tensor that gets a
Q/DQ pair, and the range methods that read it (min-max, percentile, MSE-optimal clip,
entropy as TensorRT's calibrator computes it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import onnx

from .fp16_measure import with_maxima
from .graph import run_with_outputs

BINS = 2048
METHODS = ("minmax", "mse", "percentile", "entropy")


@dataclass
class Histogram:
    """|x| of one tensor over all calibration samples, in BINS bins over [0, amax]."""

    amax: float
    counts: np.ndarray

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(0.0, self.amax, BINS + 1)

    def quantile(self, fraction: float) -> float:
        """|x| below which `fraction` of the values lie (upper edge of that bin)."""
        cumulative = np.cumsum(self.counts) / max(self.counts.sum(), 1)
        return float(self.edges[1 + int(np.searchsorted(cumulative, fraction))] if fraction < 1 else self.amax)


@dataclass
class ActivationStats:
    """Per tensor: the largest |x| of each channel, and how far the largest token reaches past
    the median token (max over samples of max-token |x| / median-token |x|)."""

    channel_amax: dict[str, np.ndarray]
    token_spread: dict[str, float]

    def channel_spread(self, name: str) -> float:
        amax = self.channel_amax[name]
        return float(amax.max() / max(float(np.median(amax)), 1e-12))


def activation_stats(
    model: onnx.ModelProto, axes: dict[str, int], samples: Sequence[dict[str, np.ndarray]], maxima_of: Sequence[str] = ()
) -> tuple[ActivationStats, dict[str, float]]:
    """One pass of the fp32 graph over the samples; the channel axis is given per tensor
    (the last for MatMul inputs, 1 for Conv inputs). In the same pass, the largest |x| of each
    tensor in `maxima_of` (what fp16 surroundings must keep in fp32 is read from them)."""
    probe, scalars = with_maxima(model, maxima_of) if maxima_of else (model, [])
    amax: dict[str, np.ndarray] = {}
    spread: dict[str, float] = {}
    top = np.zeros(len(scalars) // 2)
    for values in run_with_outputs(probe, list(axes) + scalars, samples):
        if scalars:
            top = np.maximum(top, np.abs(np.array([float(values.pop(s)) for s in scalars])).reshape(-1, 2).max(axis=1))
        for name, value in values.items():
            rows = np.abs(np.moveaxis(value, axes[name] % value.ndim, -1)).reshape(-1, value.shape[axes[name]])
            channels = rows.max(axis=0)
            amax[name] = channels if name not in amax else np.maximum(amax[name], channels)
            tokens = rows.max(axis=1)
            spread[name] = max(spread.get(name, 0.0), float(tokens.max() / max(float(np.median(tokens)), 1e-12)))
    return ActivationStats(amax, spread), dict(zip(maxima_of, top.tolist()))


def histograms(model: onnx.ModelProto, amax: dict[str, float], samples: Sequence[dict[str, np.ndarray]]) -> dict[str, Histogram]:
    """|x| histograms on [0, amax] of each tensor: one pass of the fp32 graph."""
    counts = {name: np.zeros(BINS, dtype=np.float64) for name in amax}
    for values in run_with_outputs(model, list(amax), samples):
        for name, value in values.items():
            counts[name] += np.histogram(np.abs(value), bins=BINS, range=(0.0, max(amax[name], 1e-12)))[0]
    return {name: Histogram(max(amax[name], 1e-12), counts[name]) for name in amax}


def _mse_clip(hist: Histogram, levels: int) -> float:
    """The clip that minimizes the expected squared error of uniform symmetric quantization:
    rounding noise (step^2 / 12) below the clip, the clipped distance above it."""
    centers = (hist.edges[:-1] + hist.edges[1:]) / 2
    best, best_error = hist.amax, np.inf
    for stop in range(BINS // 16, BINS + 1, BINS // 256):
        clip = hist.edges[stop]
        step = clip / levels
        inside = hist.counts[:stop].sum() * step * step / 12
        outside = (hist.counts[stop:] * (centers[stop:] - clip) ** 2).sum()
        if inside + outside < best_error:
            best, best_error = clip, inside + outside
    return float(best)


def _entropy_clip(hist: Histogram, levels: int) -> float:
    """TensorRT's entropy calibration: the clip whose `levels`-bin quantized histogram is
    closest (KL divergence) to the clipped reference histogram."""
    counts = hist.counts
    best, best_kl = BINS, np.inf
    for stop in range(levels, BINS + 1, max(1, BINS // 512)):
        reference = counts[:stop].copy()
        reference[-1] += counts[stop:].sum()  # outliers fold into the last bin
        starts = np.linspace(0, stop, levels + 1).astype(int)[:-1]
        lengths = np.diff(np.append(starts, stop))
        used = counts[:stop] > 0
        sums = np.add.reduceat(counts[:stop], starts)
        nonzero = np.add.reduceat(used.astype(np.float64), starts)
        quantized = np.repeat(sums / np.maximum(nonzero, 1), lengths) * used  # spread over the used bins
        p = reference / max(reference.sum(), 1e-30)
        q = quantized / max(quantized.sum(), 1e-30)
        mask = p > 0
        kl = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
        if kl < best_kl:
            best, best_kl = stop, kl
    return float(hist.edges[best])


def choose_amax(hist: Histogram, method: str, levels: int, percentile: float = 99.99) -> float:
    """The |x| that maps to the largest quantized value."""
    if method == "minmax":
        return hist.amax
    if method == "percentile":
        return hist.quantile(percentile / 100)
    if method == "mse":
        return _mse_clip(hist, levels)
    if method == "entropy":
        return _entropy_clip(hist, levels)
    raise ValueError(method)
