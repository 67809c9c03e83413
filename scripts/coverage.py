"""Which image-text-to-text model types of the installed transformers mmexport exports, verified:
for each type, a tiny random folder (its config class shrunk generically by mmexport.hf.tiny,
weights saved in bf16 with its image processor), then the vision side exported and gated
against transformers on the processor's outputs for photos, and attached (the artifact answers
get_image_features, the tower never runs). Writes mmexport/hf/coverage.json (what
`mmexport list --models --all` reads) and docs/coverage.md.

    python scripts/coverage.py [MODEL_TYPE ...] [--jobs 2] [--timeout 600]

Each type runs in its own process (one thread each); the table is written after every type, so an
interrupted run keeps what it verified (and a run naming types updates only those rows).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "mmexport" / "hf" / "coverage.json"
DOC = ROOT / "docs" / "coverage.md"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def attached_matches(model: Any, folder: Path, artifact: Path) -> float:
    """get_image_features of the model with the artifact attached against the model as loaded;
    every module the artifact covers is made to raise if it runs. Returns the max relative error."""
    import torch

    import mmexport
    from mmexport.hf.automatic import _process, accepted
    from mmexport.hf.folder import from_config
    from mmexport.hf.model import image_owner, is_module
    from mmexport.hf.subject import part_paths

    owner = image_owner(model)
    inputs = _process(str(folder), accepted(owner, str(folder)), 2, seed=7)
    with torch.no_grad():
        expected = owner.get_image_features(**inputs, return_dict=True).pooler_output
    mmexport.attach(model, artifact)
    for path in part_paths(model, from_config(model.config).family, "vision"):
        if is_module(model, path):
            model.get_submodule(path).forward = _refuse(path)
    with torch.no_grad():
        got = owner.get_image_features(**inputs).pooler_output
    want = torch.cat([t.reshape(-1, t.shape[-1]) for t in (expected if isinstance(expected, (list, tuple)) else [expected])])
    have = torch.cat([t.reshape(-1, t.shape[-1]) for t in (got if isinstance(got, (list, tuple)) else [got])])
    return float((have - want).abs().max() / want.abs().max())


def _refuse(path: str) -> Any:
    def forward(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{path} ran after attach")

    return forward


def _no_processor_cause() -> str:
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        return "its image processor needs torchvision (not installed where this table was made)"
    return "no image processor that mmexport.hf.tiny can make (none named for it in transformers, nor for its parent types)"


def _model_fails(model: Any, folder: Path) -> str | None:
    """Why transformers' own get_image_features fails on the tiny folder's processor outputs, if it
    does. None where mmexport's refusal is the cause (no get_image_features, processor outputs a
    graph cannot take): that refusal stands."""
    import torch

    from mmexport.errors import MmexportError
    from mmexport.hf.automatic import _process, accepted
    from mmexport.hf.model import image_owner

    try:
        owner = image_owner(model)
        if getattr(owner, "get_image_features", None) is None:
            return None
        inputs = _process(str(folder), accepted(owner, str(folder)), 2, seed=7)
    except MmexportError:
        return None
    except Exception as exc:
        return _one_line(exc)
    try:
        with torch.no_grad():
            owner.get_image_features(**inputs)
    except Exception as exc:
        return _one_line(exc)
    return None


def verify(model_type: str) -> dict[str, Any]:
    """One type, in its own process: built, exported, gated, attached."""
    import torch

    torch.set_num_threads(1)
    import mmexport
    from mmexport.errors import MmexportError
    from mmexport.hf import family
    from mmexport.hf.subject import vision_part
    from mmexport.hf.tiny import save_tiny

    row: dict[str, Any] = {"model_type": model_type, "status": "declared" if family(model_type) else "automatic", "cause": None}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / model_type
        try:
            model = save_tiny(model_type, folder)
        except Exception as exc:  # the shrinker's limits, not mmexport's: the type is untried
            return row | {"status": "untried", "cause": f"no tiny model made by mmexport.hf.tiny: {_one_line(exc)}"}
        if model is None:
            return row | {"status": "untried", "cause": _no_processor_cause()}
        try:
            made = mmexport.export(None, subject=vision_part(folder), output=Path(tmp) / "v.onnx")
            assert made.parity is not None
            row["gate"] = {"max_rel": made.parity.worst_rel, "cosine": made.parity.worst_cosine}
            if row["status"] == "automatic":  # a declared family's attach is the suite's (test_families)
                row["attach_max_rel"] = attached_matches(model, folder, made.path)
        except MmexportError as exc:
            broken = _model_fails(model, folder)
            if broken:  # the shrinker's limits again: the tiny folder's own model cannot take its inputs
                return row | {"status": "untried", "cause": f"the tiny folder's own model fails on its processor's outputs: {broken}"}
            return row | {"status": "refused", "cause": _one_line(exc)}
        except Exception as exc:  # a defect to look at, reported as such
            return row | {"status": "refused", "cause": f"{type(exc).__name__}: {_one_line(exc)}"}
    return row | {"seconds": round(time.perf_counter() - start, 1)}


def _run(model_type: str, timeout: int) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply_async(verify, (model_type,))
        try:
            return result.get(timeout)
        except multiprocessing.TimeoutError:
            return {"model_type": model_type, "status": "untried", "cause": f"not finished in {timeout} s on this machine"}


def write_outputs(rows: list[dict[str, Any]]) -> None:
    import transformers

    counts = {s: sum(r["status"] == s for r in rows) for s in ("declared", "automatic", "refused", "untried")}
    DATA.write_text(json.dumps({"transformers": transformers.__version__, "rows": rows}, indent=1) + "\n")
    lines = [
        "# Coverage: image-text-to-text model types of transformers " + transformers.__version__,
        "",
        "Generated by `python scripts/coverage.py`: each type's config class shrunk to a tiny random model",
        "(saved in bf16 with its image processor), its vision side exported, gated against transformers'",
        "`get_image_features` on the processor's outputs for photos, and attached. `mmexport list --models --all`",
        "reads the same table.",
        "",
        f"**Verified: {counts['declared'] + counts['automatic']} of {len(rows)}** ({counts['declared']} declared, "
        f"{counts['automatic']} through transformers' own path); refused: {counts['refused']}; untried here: {counts['untried']}.",
        "",
        "| model_type | status | gate max rel | attach max rel | cause |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        gate = r.get("gate", {}).get("max_rel")
        attach = r.get("attach_max_rel")
        cause = (r.get("cause") or "").replace("|", "\\|")
        lines.append(f"| {r['model_type']} | {r['status']} | {'' if gate is None else f'{gate:.1e}'} | {'' if attach is None else f'{attach:.1e}'} | {cause} |")
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("types", nargs="*")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=600)
    args = parser.parse_args()
    from concurrent.futures import ThreadPoolExecutor

    from mmexport.hf.automatic import image_text_types

    types = args.types or image_text_types()
    known = {r["model_type"]: r for r in json.loads(DATA.read_text())["rows"]} if DATA.is_file() and args.types else {}
    with ThreadPoolExecutor(args.jobs) as pool:
        for row in pool.map(lambda t: _run(t, args.timeout), types):
            known[row["model_type"]] = row
            print(f"{row['model_type']:28s} {row['status']:9s} {row.get('cause') or ''}", flush=True)
            write_outputs([known[t] for t in sorted(known)])


if __name__ == "__main__":
    sys.exit(main())
