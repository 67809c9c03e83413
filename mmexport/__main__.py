"""`python -m mmexport` runs the CLI (where the console script is not on PATH)."""

from .cli import run

run()
