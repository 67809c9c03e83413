"""`mmexport.runtime.load(artifact, device)`: the one call a serving process needs."""

from .serving.runtime import InputError, Runtime, load

__all__ = ["InputError", "Runtime", "load"]
