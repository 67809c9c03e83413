"""Deterministic synthetic vision features, in families that stress low precision in different
ways. `channels` is the family the defaults were tuned on; the others are written differently
(other tails, other places for the outliers) to check that the gates hold on data the search
never saw. Channel statistics depend only on the width (not the seed), so calibration and
held-out sets drawn with different seeds come from one distribution."""

from __future__ import annotations

from typing import Callable

import numpy as np

DEFAULT_FAMILY = "channels"


def _channel_rng(width: int, salt: int) -> np.random.Generator:
    return np.random.default_rng(width * 1000 + salt)  # same channels for every seed


def outlier_features(shape: tuple[int, ...], seed: int = 0, outlier_share: float = 0.01, outlier_scale: float = 40.0, tail_df: float = 5.0) -> np.ndarray:
    """`channels`: per-channel scales, Student-t tails, ~1% outlier channels about 40x larger
    than the rest and off zero (as seen in CLIP/EVA/SigLIP features)."""
    width = shape[-1]
    channel_rng = np.random.default_rng(width)
    scales = np.exp(channel_rng.normal(0.0, 0.5, width))
    offsets = channel_rng.normal(0.0, 0.2, width)
    outliers = channel_rng.choice(width, max(1, int(round(width * outlier_share))), replace=False)
    scales[outliers] *= outlier_scale
    offsets[outliers] = channel_rng.choice([-1.0, 1.0], len(outliers)) * 2.0  # outlier channels sit off zero
    rng = np.random.default_rng(seed)
    tails = rng.standard_t(tail_df, size=shape) / np.sqrt(tail_df / (tail_df - 2))  # unit variance, heavy tails
    return ((tails + offsets) * scales).astype(np.float32)


def band_features(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """`band`: Laplace tails with gamma-distributed channel scales, a contiguous band of
    channels (0.5%) that is always positive and ~25x larger (post-GELU-like), and per-token
    norms that vary by a log-normal factor."""
    width = shape[-1]
    channel_rng = _channel_rng(width, 1)
    scales = channel_rng.gamma(2.0, 0.5, width)
    band = max(1, width // 200)
    start = int(channel_rng.integers(0, width - band + 1))
    rng = np.random.default_rng(seed + 101)
    values = rng.laplace(0.0, 1.0 / np.sqrt(2), size=shape) * scales
    values[..., start : start + band] = np.abs(values[..., start : start + band]) * 25.0 + 5.0
    token_scale = np.exp(rng.normal(0.0, 0.3, size=shape[:-1] + (1,)))
    return (values * token_scale).astype(np.float32)


def massive_features(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """`massive`: Gaussian features where a few tokens per image (the first, and two more at
    fixed positions) carry ~100x values in a few fixed channels: the massive activations
    reported for CLIP ViT-L and for LLMs."""
    width = shape[-1]
    channel_rng = _channel_rng(width, 2)
    channels = channel_rng.choice(width, min(width, 3), replace=False)
    rng = np.random.default_rng(seed + 202)
    values = rng.normal(0.0, 1.0, size=shape)
    if len(shape) >= 2 and shape[-2] > 1:
        tokens = shape[-2]
        positions = sorted({0, tokens // 3, (2 * tokens) // 3})
        signs = channel_rng.choice([-1.0, 1.0], len(channels))
        for position in positions:
            values[..., position, channels] = signs * 100.0 * (1 + 0.1 * rng.standard_normal(shape[:-2] + (len(channels),)))
    return values.astype(np.float32)


def token_outlier_features(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """`tokens`: Gaussian-mixture channels, and ~2% of tokens at random places with 10-30x
    the norm across all channels (the high-norm artifact tokens of ViTs)."""
    width = shape[-1]
    channel_rng = _channel_rng(width, 3)
    scales = np.exp(channel_rng.normal(0.0, 0.3, width))
    means = channel_rng.normal(0.0, 0.5, width)
    rng = np.random.default_rng(seed + 303)
    values = (rng.normal(0.0, 1.0, size=shape) + means) * scales
    if len(shape) >= 2:
        flat = values.reshape(-1, width)
        count = max(1, flat.shape[0] // 50)
        rows = rng.choice(flat.shape[0], count, replace=False)
        flat[rows] *= rng.uniform(10.0, 30.0, size=(count, 1))
        values = flat.reshape(shape)
    return values.astype(np.float32)


def generated_pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Normalized images ([-2, 2] like an image processor's output): a few low-frequency waves
    per channel (smooth regions, edges where they cross) and fine noise."""
    rng = np.random.default_rng(seed + 404)
    height, width = shape[-2], shape[-1]
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    images = np.zeros(shape, dtype=np.float64)
    for index in np.ndindex(*shape[:-2]):
        waves = sum(
            np.sin(2 * np.pi * (rng.uniform(0.5, 4) * x * np.cos(a) + rng.uniform(0.5, 4) * y * np.sin(a)) + rng.uniform(0, 6))
            for a in rng.uniform(0, np.pi, 3)
        )
        images[index] = waves / 2 + rng.normal(0.0, 0.1, (height, width))
    return np.clip(images, -2.0, 2.0).astype(np.float32)


FAMILIES: dict[str, Callable[..., np.ndarray]] = {
    "channels": outlier_features,
    "band": band_features,
    "massive": massive_features,
    "tokens": token_outlier_features,
}


def features(family: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return FAMILIES[family](shape, seed=seed)
