"""A transformers VLM with only its vision parts in memory: the model is built on the meta
device (no weights, no time), the parts an artifact covers are materialized on the CPU, and
only their tensors are read from the folder, found through transformers' own checkpoint key
mapping (so hub layouts such as `vision_tower.vision_model.*` load as transformers loads them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import Checkpoint, open_checkpoint
from ..errors import UsageError, WeightsError


def skeleton(hf_config: Any, auto_class: str = "AutoModelForImageTextToText") -> nn.Module:
    """The whole model on the meta device, in eval mode, eager-free (sdpa where it has it)."""
    import transformers

    try:
        with torch.device("meta"):
            model = getattr(transformers, auto_class).from_config(hf_config)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"transformers cannot build model_type '{hf_config.model_type}': {str(exc).splitlines()[0]}") from exc
    return model.eval()


def image_owner(model: nn.Module) -> nn.Module:
    """The innermost model with a get_image_features (the one transformers' forward calls)."""
    owners = [m for m in model.modules() if callable(getattr(m, "get_image_features", None))]
    return owners[-1] if owners else model


def module_path(model: nn.Module, suffix: str) -> str:
    """The dotted path of the one submodule (or parameter) whose name is `suffix` or ends with '.suffix'."""
    names = [n for n, _ in model.named_modules()] + [n for n, _ in model.named_parameters()]
    found = sorted({n for n in names if n == suffix or n.endswith("." + suffix)}, key=len)
    if not found:
        raise UsageError(f"the {type(model).__name__} has no module named '{suffix}'; is this transformers version supported?")
    if len(found) > 1 and found[1].startswith(found[0] + "."):
        return found[0]  # 'x' and 'x.y.x': the outer one
    if len(found) > 1:
        raise UsageError(f"the {type(model).__name__} has {len(found)} modules named '{suffix}' ({', '.join(found)}); expected one")
    return found[0]


def _owner(model: nn.Module, path: str) -> nn.Module:
    """The innermost transformers PreTrainedModel holding `path`: its _init_weights knows the part."""
    from transformers import PreTrainedModel

    owner, parts = model, path.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        module = model.get_submodule(prefix) if is_module(model, prefix) else None
        if isinstance(module, PreTrainedModel):
            owner = module
    return owner


def is_module(model: nn.Module, path: str) -> bool:
    try:
        model.get_submodule(path)
        return True
    except AttributeError:
        return False


def _reinit_buffers(module: nn.Module, owner: nn.Module) -> None:
    """Non-persistent buffers (rotary inv_freq, position ids) are not in checkpoints: after
    to_empty they are garbage until the owning model's _init_weights computes them again."""
    from transformers import PreTrainedModel

    if isinstance(module, PreTrainedModel):
        owner = module
    if getattr(module, "_non_persistent_buffers_set", None):
        owner._init_weights(module)
    for child in module.children():
        _reinit_buffers(child, owner)


def materialize(model: nn.Module, paths: list[str]) -> None:
    """Give the parts at `paths` real (uninitialized) CPU storage; buffers are recomputed."""
    for path in paths:
        if is_module(model, path):
            part = model.get_submodule(path)
            part.to_empty(device="cpu")
            _reinit_buffers(part, _owner(model, path))
        else:  # a bare parameter (BLIP-2's query_tokens)
            parent, _, name = path.rpartition(".")
            holder = model.get_submodule(parent) if parent else model
            value = getattr(holder, name)
            setattr(holder, name, nn.Parameter(torch.empty_like(value, device="cpu"), requires_grad=False))


def _part_tensors(model: nn.Module, paths: list[str]) -> dict[str, torch.Tensor]:
    """Model key -> tensor to fill, for every parameter and persistent buffer of the parts."""
    state = model.state_dict(keep_vars=True)
    return {k: v for k, v in state.items() if any(k == p or k.startswith(p + ".") for p in paths)}


def _renamings(model: nn.Module) -> tuple[list, list]:
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter

    transforms = get_model_conversion_mapping(model)
    return [t for t in transforms if not isinstance(t, WeightConverter)], [t for t in transforms if isinstance(t, WeightConverter)]


@dataclass(frozen=True)
class Source:
    """Where a model tensor comes from: a checkpoint key, and the conversion transformers applies on
    load where the checkpoint stores it in another layout (a rotary permutation, say)."""

    key: str
    converter: Any = None  # a transformers WeightConverter with one source
    target: str | None = None  # which of its targets this is, where it splits one into several (a fused qkv)

    def read(self, checkpoint: Checkpoint, config: Any) -> torch.Tensor:
        tensor = checkpoint.tensor(self.key)
        if self.converter is None:
            return tensor
        found = {self.converter.source_patterns[0]: [tensor]}
        for operation in self.converter.operations:  # transformers' own operations, in its order
            found = operation.convert(found, self.converter.source_patterns, self.converter.target_patterns, config=config)
        value = found[self.target] if self.target is not None else next(iter(found.values()))
        return value[0] if isinstance(value, list) else value


def _split_targets(renamed: str, key: str, converter: Any) -> dict[str, Source]:
    """The model keys one checkpoint tensor becomes: transformers names the first target, the
    others by its pattern replaced (Kimi-K2.5's wqkv -> q_proj, k_proj, v_proj)."""
    first = converter.target_patterns[0]
    if len(converter.target_patterns) == 1:
        return {renamed: Source(key, converter)}
    head, found, tail = renamed.rpartition(first)
    if not found:
        raise WeightsError(f"'{key}' is split on load into keys this reader cannot name ({', '.join(converter.target_patterns)})")
    return {head + target + tail: Source(key, converter, target) for target in converter.target_patterns}


def checkpoint_keys(model: nn.Module, checkpoint: Checkpoint, wanted: set[str]) -> dict[str, Source]:
    """Model key -> where it is in the checkpoint, renamed (and converted) as transformers does on load."""
    from transformers.core_model_loading import rename_source_key

    renamings, converters = _renamings(model)
    meta_state = model.state_dict()
    prefix = getattr(model, "base_model_prefix", None) or None
    found: dict[str, Source] = {}
    for key in checkpoint.keys():
        renamed, converted = rename_source_key(key, renamings, converters, prefix, meta_state)
        if renamed not in wanted:
            continue
        converter = next((c for c in converters if converted in c.source_patterns), None) if converted is not None else None
        if converter is None:
            found[renamed] = Source(key)
            continue
        if len(converter.source_patterns) != 1:  # several tensors merged into one (MoE experts)
            raise WeightsError(f"{checkpoint.path}: '{key}' is merged with other tensors on load ({converted}); not supported for a vision part")
        found.update(_split_targets(renamed, key, converter))
    return found


def load_parts(model: nn.Module, paths: list[str], folder: Path) -> None:
    """Materialize the parts and copy the folder's tensors into them, one at a time, as fp32."""
    checkpoint = open_checkpoint(folder)
    wanted = set(_part_tensors(model, paths))
    sources = checkpoint_keys(model, checkpoint, wanted)
    missing = sorted(wanted - set(sources))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise WeightsError(f"{folder} lacks tensors of the vision side: {shown}; is the folder complete?")
    materialize(model, paths)
    targets = _part_tensors(model, paths)
    with torch.no_grad():
        for key, target in targets.items():
            source = sources[key].read(checkpoint, model.config)
            if tuple(source.shape) != tuple(target.shape):
                raise WeightsError(f"{folder}: {sources[key].key} has shape {tuple(source.shape)}, config.json implies {tuple(target.shape)}")
            target.copy_(source.to(target.dtype) if target.is_floating_point() or target.is_complex() else source)


def float32(model: nn.Module, paths: list[str]) -> None:
    """The parts in fp32 (folders are bf16): the reference and the exported graph compute in fp32.
    Complex buffers (Llama 4's rotary table) stay complex. The configs say fp32 too: some models
    cast their inputs to the config's dtype (Nemotron-H Omni's pixel_values)."""
    _configs_float32(model.config)
    for path in paths:
        if not is_module(model, path):  # a bare parameter (BLIP-2's query tokens)
            parent, _, name = path.rpartition(".")
            holder = model.get_submodule(parent) if parent else model
            value = getattr(holder, name)
            if value.is_floating_point() and value.dtype != torch.float32:
                setattr(holder, name, nn.Parameter(value.detach().float(), requires_grad=False))
            continue
        for module in model.get_submodule(path).modules():
            for name, tensor in list(module.named_parameters(recurse=False)):
                if tensor.is_floating_point() and tensor.dtype != torch.float32:
                    setattr(module, name, nn.Parameter(tensor.detach().float(), requires_grad=False))
            for name, buffer in list(module.named_buffers(recurse=False)):
                if buffer is not None and buffer.is_floating_point() and buffer.dtype != torch.float32:
                    module._buffers[name] = buffer.float()


def _configs_float32(config: Any) -> None:
    from transformers import PretrainedConfig

    config.dtype = torch.float32
    for value in vars(config).values():
        if isinstance(value, PretrainedConfig):
            _configs_float32(value)


def weights_name(path: str) -> str:
    """A short name for a part in messages ('model.vision_tower' -> 'vision_tower')."""
    return re.sub(r"^model\.", "", path)
