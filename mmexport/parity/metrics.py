"""How far an output is from its reference: max abs, max rel, global cosine, and the
per-token cosine (over the last axis) whose low percentile shows a few ruined tokens."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOKEN_PERCENTILE = 1.0  # the gate reads the 1st percentile of the per-token cosines


@dataclass(frozen=True)
class Metrics:
    max_abs: float
    max_rel: float  # max abs error / max |reference|: stays meaningful near zero
    cosine: float
    token_cosine_p1: float  # 1st percentile over tokens (rows of the last axis)

    @classmethod
    def failed(cls) -> "Metrics":
        return cls(float("inf"), float("inf"), 0.0, 0.0)


def token_cosines(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Cosine of each row over the last axis. Rows that are (numerically) zero in both count
    as equal: they carry nothing, and noise on them is not a ruined token."""
    width = expected.shape[-1] if expected.ndim else 1
    a = actual.reshape(-1, width)
    e = expected.reshape(-1, width)
    norms_a, norms_e = np.linalg.norm(a, axis=1), np.linalg.norm(e, axis=1)
    floor = 1e-6 * max(float(norms_e.max(initial=0.0)), 1e-30)
    dots = np.einsum("ij,ij->i", a, e)
    cos = dots / np.maximum(norms_a * norms_e, 1e-300)
    return np.where((norms_a < floor) & (norms_e < floor), 1.0, cos)


def compare(actual: np.ndarray, expected: np.ndarray) -> Metrics:
    """All metrics in float64; a shape mismatch or a non-finite output never passes."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape or not np.all(np.isfinite(a)):
        return Metrics.failed()
    diff = np.abs(a - e)
    max_abs = float(diff.max(initial=0.0))
    scale = float(np.abs(e).max(initial=0.0))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    flat_a, flat_e = a.ravel(), e.ravel()
    norms = np.linalg.norm(flat_a) * np.linalg.norm(flat_e)
    cosine = float(flat_a @ flat_e / norms) if norms > 0 else (1.0 if max_abs == 0 else 0.0)
    tokens = token_cosines(a, e) if a.size else np.ones(1)
    return Metrics(max_abs, max_rel, cosine, float(np.percentile(tokens, TOKEN_PERCENTILE)))
