"""A real tritonserver for repositories mmexport writes (PyTriton ships the binary)."""

from __future__ import annotations

import os
from pathlib import Path


def triton_backends(folder: Path) -> tuple[str, dict[str, str]]:
    """PyTriton's tritonserver binary and a backend folder with its Python backend, for running
    a repository mmexport wrote in the real server (environment: this interpreter's libpython)."""
    import shutil
    import sys
    import sysconfig

    import pytriton

    package = Path(pytriton.__file__).parent
    python = folder / "python"
    python.mkdir(parents=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(package / "tritonserver" / "backends" / "python" / name, python / name)
    stub = package / "tritonserver" / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / "triton_python_backend_stub"
    shutil.copy2(stub, python / "triton_python_backend_stub")
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(package.parent / "nvidia_pytriton.libs")]
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(libs + [os.environ.get("LD_LIBRARY_PATH", "")]), PYTHONPATH=str(Path(__file__).parent))
    return str(package / "tritonserver" / "bin" / "tritonserver"), env
