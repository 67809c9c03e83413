"""mmexport's CPU figures re-timed outside `mmexport bench`, as a user would time them: transformers'
eager `get_image_features` on the folder and `mmexport.load(ARTIFACT)` for each artifact, in
interleaved rounds in one process with the same thread count, on one photo through the folder's
own processor. Prints each median, its ratio to eager and to the first artifact, and the output's
cosine against eager (global and the 1st percentile over tokens).

    python scripts/cpu_retime.py --folder DIR FP32.onnx [VARIANT.onnx ...] [--size 448] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from cpu_profile import eager_reference  # this folder's profiler script: the same reference and photo

from mmexport.parity import compare


def calls(folder: Path, artifacts: list[Path], size: int) -> dict[str, Callable[[], np.ndarray]]:
    """name -> a call returning the image features, eager first."""
    import torch

    import mmexport

    reference, given = eager_reference(folder, size)
    tensors = [torch.from_numpy(x) for x in given.values()]

    def eager() -> np.ndarray:
        with torch.inference_mode():
            out: Any = reference(*tensors)
        return (out[0] if isinstance(out, (tuple, list)) else out).float().numpy()

    made: dict[str, Callable[[], np.ndarray]] = {"torch eager": eager}
    for artifact in artifacts:
        runtime = mmexport.load(artifact)
        made[artifact.name] = lambda runtime=runtime: next(iter(runtime(**given).values()))
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("artifacts", type=Path, nargs="+")
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--size", type=int, default=448)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    print(f"torch threads {torch.get_num_threads()}; ONNX Runtime: its default (one per physical core)", flush=True)
    made = calls(args.folder, args.artifacts, args.size)
    outputs = {name: call() for name, call in made.items()}  # warm-up, and the outputs compared
    times: dict[str, list[float]] = {name: [] for name in made}
    for _ in range(args.rounds):
        for name, call in made.items():
            start = time.perf_counter()
            call()
            times[name].append(1000 * (time.perf_counter() - start))
    median = {name: float(np.median(t)) for name, t in times.items()}
    first = args.artifacts[0].name
    for name in made:
        against = compare(outputs[name], outputs["torch eager"])
        print(
            f"{name:32s} {median[name]:9.0f} ms  {median[name] / median['torch eager']:.2f}x eager  "
            f"{median[name] / median[first]:.2f}x {first}  cosine {against.cosine:.5f}  token p1 {against.token_cosine_p1:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
