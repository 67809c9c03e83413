"""`mmexport.runtime.load(artifact, device)`: the one call a serving process needs."""

from .serving.runtime import InputError, Runtime, TargetWarning, load

__all__ = ["InputError", "Runtime", "TargetWarning", "load"]
