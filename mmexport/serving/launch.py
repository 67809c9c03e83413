"""Start `mmexport serve` in its own process and wait until it answers: for scripts and CI jobs
that put the encoder service beside something else on one machine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from ..errors import MmexportError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _part(artifact: Path) -> str | None:
    from ..record import read

    model = read(artifact).model
    return model.part if model is not None else None


def start_service(artifact: Path, folder: Path | None = None, name: str = "vision", timeout: float = 300) -> tuple[subprocess.Popen, str]:
    """`mmexport serve ARTIFACT [--model FOLDER]` on loopback ports; returns the process (its own
    session: stop it with os.killpg) and the HTTP address, once every endpoint is ready."""
    import tritonclient.http as httpclient

    http, grpc, metrics = free_port(), free_port(), free_port()
    args = ["mmexport", "serve", str(artifact), "--name", name, "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    args += ["--model", str(folder)] if folder is not None else []
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    kind = "video" if folder is not None and _part(artifact) == "video" else "image"
    models = [name] + ([f"{name}_{kind}s", f"{kind}s"] if folder is not None else [])
    client = httpclient.InferenceServerClient(f"127.0.0.1:{http}")
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            try:
                if all(client.is_model_ready(model) for model in models):
                    return proc, f"127.0.0.1:{http}"
            except Exception:  # not listening yet
                pass
            if proc.poll() is not None:
                raise MmexportError(f"the service exited: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.5)
    finally:
        client.close()
    os.killpg(proc.pid, signal.SIGKILL)
    raise MmexportError(f"the service did not become ready in {timeout:.0f} s")
