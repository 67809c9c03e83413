"""Read tensors from checkpoints without running code from them and without loading
what the connector does not need (a full LLM checkpoint can be tens of GB)."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open

from .errors import UsageError, WeightsError

SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_INDEX = "pytorch_model.bin.index.json"
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin", "mm_projector.bin")
WRAPPER_KEYS = ("state_dict", "model", "module")  # training checkpoints nest the weights


class Checkpoint:
    """Keys of one checkpoint (a file or a Hugging Face folder) and lazy tensor access."""

    def __init__(self, path: Path, sources: dict[str, Path], opened: dict[Path, Reader] | None = None):
        self.path = path
        self._sources = sources  # key -> file holding it
        self._opened = opened or {}  # file -> reader, opened on first use

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor], name: str = "a loaded model") -> "Checkpoint":
        """The tensors of a model in memory, read like a checkpoint (attach checks them)."""
        source = Path(name)
        return cls(source, dict.fromkeys(state_dict, source), {source: Reader(list(state_dict), state_dict.__getitem__)})

    def keys(self) -> list[str]:
        return list(self._sources)

    def tensor(self, key: str) -> torch.Tensor:
        file = self._sources[key]
        if file not in self._opened:
            self._opened[file] = _open_file(file)
        return self._opened[file].get(key)


def open_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"weights not found: {path}; pass an existing .safetensors/.bin/.pt file or model folder")
    if path.is_dir():
        return _folder(path)
    if path.stat().st_size == 0:
        raise WeightsError(f"weights file is empty: {path}; re-download or re-save it")
    return _single_file(path)


def _single_file(path: Path) -> Checkpoint:
    reader = _open_file(path)  # opened once: its reader serves every tensor later
    return Checkpoint(path, {key: path for key in reader.keys()}, {path: reader})


def _folder(folder: Path) -> Checkpoint:
    for index_name in (SAFETENSORS_INDEX, BIN_INDEX):
        index = folder / index_name
        if index.exists():
            return Checkpoint(folder, _index_sources(folder, index))
    for name in SINGLE_FILES:
        if (folder / name).exists():
            return _single_file(folder / name)
    raise WeightsError(f"no weights in folder {folder}; expected {SAFETENSORS_INDEX}, {BIN_INDEX} or one of {', '.join(SINGLE_FILES)}")


def _index_sources(folder: Path, index: Path) -> dict[str, Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"unreadable index {index}: {exc}; it needs a 'weight_map' object") from exc
    root = folder.resolve()
    sources = {}
    for key, shard in weight_map.items():
        shard_path = (folder / str(shard)).resolve()
        if root not in shard_path.parents:  # a crafted index must not read files elsewhere
            raise WeightsError(f"index {index} points outside its folder ({shard}); refusing to read it")
        if not shard_path.is_file():
            raise WeightsError(f"index {index} names a missing shard: {shard}")
        sources[key] = shard_path
    return sources


class Reader:
    """Keys and tensors of one file."""

    def __init__(self, keys: list[str], get: Callable[[str], torch.Tensor]):
        self._keys, self.get = keys, get

    def keys(self) -> list[str]:
        return self._keys


def _open_file(path: Path) -> Reader:
    if path.suffix == ".safetensors":
        try:
            handle = safe_open(str(path), framework="pt")
            return Reader(list(handle.keys()), handle.get_tensor)
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"corrupt safetensors file {path}: {exc}; re-download or re-save it") from exc
    tensors = _torch_state_dict(path)
    return Reader(list(tensors), tensors.__getitem__)


def _torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True: a pickle that holds code or objects is refused."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; the outcome is what counts
            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):  # legacy (non-zip) files cannot be memory-mapped
                    raise
                loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path} is not a plain weights file (refused to unpickle it: {_unpickler_reason(exc)}); re-save it as a state dict of tensors or as .safetensors"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read {path}: {reason}; the file may be truncated or not a PyTorch checkpoint") from exc
    return _tensors_of(loaded, path)


def _unpickler_reason(exc: Exception) -> str:
    # torch's message is long and suggests weights_only=False; keep only what it refused.
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        detail = detail.split(" was not an allowed global")[0].rstrip(".")
        if detail:
            return detail
    return "it holds Python objects, not only tensors"


def _tensors_of(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(loaded, dict):
        for wrapper in WRAPPER_KEYS:
            if isinstance(loaded.get(wrapper), dict) and not any(isinstance(v, torch.Tensor) for v in loaded.values()):
                loaded = loaded[wrapper]
                break
        tensors = {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightsError(f"{path} holds no tensors by name; expected a state dict")
