"""What the tests share, in one place: running the CLI, comparisons, tiny families, originals."""
