"""Hugging Face model folders. A family is a short declaration (family.py) in its own module of
`families/`; the registry is built from those declarations (their `model_types`), from other
packages' `mmexport.families` entry points, from modules named in MMEXPORT_FAMILIES
("pkg.module:FAMILY,..."), and from `register_family` calls. What families share
is in subject.py, model.py and attach.py."""

from __future__ import annotations

from ..registry import Registry
from .family import Family

REGISTRY: Registry[Family] = Registry(
    "model type",
    f"{__name__}.families",
    "FAMILY",
    names_of=lambda declared: declared.model_types,
    entry_points="mmexport.families",
    env="MMEXPORT_FAMILIES",
)


def model_types() -> list[str]:
    return REGISTRY.names()


def family(model_type: str) -> Family | None:
    return REGISTRY.find(model_type)


def register_family(declared: Family) -> Family:
    """Declare a family from outside mmexport (a remote-code model, say); every stage then reads it."""
    if not isinstance(declared, Family) or not declared.model_types:
        from ..errors import UsageError

        raise UsageError("register_family takes a mmexport.hf.Family naming at least one model_type")
    return REGISTRY.register(declared)


__all__ = ["Family", "family", "model_types", "register_family"]
