"""Serving: Triton model repositories and a real Triton server (PyTriton); the runtime they use
is `mmexport.runtime`."""
