"""Deterministic synthetic vision features with the statistics that make int8 hard:
per-channel scales, heavy tails, and ~1% outlier channels about 40x larger than the rest
(as seen in CLIP/EVA/SigLIP features). For tests, and for `--calib synthetic` when asked."""

from __future__ import annotations

import numpy as np


def outlier_features(shape: tuple[int, ...], seed: int = 0, outlier_share: float = 0.01, outlier_scale: float = 40.0, tail_df: float = 5.0) -> np.ndarray:
    """float32 array whose last axis is the channel axis. Channel statistics depend only on the
    width (not the seed), so calibration and held-out sets drawn with different seeds agree."""
    width = shape[-1]
    channel_rng = np.random.default_rng(width)  # same channels for every seed
    scales = np.exp(channel_rng.normal(0.0, 0.5, width))
    offsets = channel_rng.normal(0.0, 0.2, width)
    outliers = channel_rng.choice(width, max(1, int(round(width * outlier_share))), replace=False)
    scales[outliers] *= outlier_scale
    offsets[outliers] = channel_rng.choice([-1.0, 1.0], len(outliers)) * 2.0  # outlier channels sit off zero
    rng = np.random.default_rng(seed)
    tails = rng.standard_t(tail_df, size=shape) / np.sqrt(tail_df / (tail_df - 2))  # unit variance, heavy tails
    return ((tails + offsets) * scales).astype(np.float32)
