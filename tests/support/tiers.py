"""The fast tier (`-m "not slow"`) and the full suite: which parameters run where."""

from __future__ import annotations

import pytest


def tiered(values, fast):
    """Parameters for the fast tier: those in `fast`; the rest run in the full suite only (CI runs everything)."""
    return [value if value in fast else pytest.param(value, marks=pytest.mark.slow) for value in values]


def uses(case: str):
    """A test of one family's tiny model runs on the xdist worker that has it (as `case` parameters do)."""
    return pytest.mark.xdist_group(name=f"family-{case}")
