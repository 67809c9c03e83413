"""Serving: the runtime API, Triton model repositories, and a real Triton server (PyTriton)."""

from .runtime import InputError, Runtime, load

__all__ = ["InputError", "Runtime", "load"]
