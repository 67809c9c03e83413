"""TensorRT / TensorRT-RTX engines: build (works without a GPU for TensorRT-RTX) and run (GPU)."""

from .build import BuildResult, build


def load(path):
    """A callable engine (needs a GPU): see runner.EngineRunner."""
    from .runner import EngineRunner

    return EngineRunner(path)


__all__ = ["BuildResult", "build", "load"]
