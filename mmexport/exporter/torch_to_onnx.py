"""torch -> ONNX with the dynamo exporter, named dynamic axes, one file when it fits."""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import onnx_ir
import torch
from torch import nn

from ..errors import MmexportError
from ..onnx_file import inline
from ..specs import Axis, TensorSpec
from . import translations
from .attention_heads import one_head_at_a_time

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
DEFAULT_OPSET = 18  # decomposed attention: builds in TensorRT(-RTX) at every precision
EXTERNAL_DATA_THRESHOLD = int(1.8 * 1024**3)  # headroom for the graph itself


def _dynamic_shapes(inputs: list[TensorSpec]) -> tuple[dict[int, Any], ...]:
    dims: dict[str, Any] = {}

    def dim(axis: Axis):
        if axis.name not in dims:
            if axis.multiple_of > 1:
                # The exporter proves divisibility through a derived dim: size = k * blocks.
                blocks = torch.export.Dim(f"{axis.name}_blocks", min=max(1, -(-axis.min // axis.multiple_of)), max=axis.max // axis.multiple_of)
                dims[axis.name] = axis.multiple_of * blocks
            else:
                dims[axis.name] = torch.export.Dim(axis.name, min=axis.min, max=axis.max)
        return dims[axis.name]

    # an axis whose range is one size (a one-patch tower's height) is static in the graph
    return tuple({i: dim(a) for i, a in spec.axes.items() if a.min < a.max} for spec in inputs)


def _name_axes(program: Any, specs: list[TensorSpec]) -> None:
    """Name every dynamic dim of the graph's inputs and outputs as the specs do (the exporter
    writes its own symbols, e.g. '4*tokens_blocks' or 's53')."""
    by_name = {s.name: s for s in specs}
    graph = program.model.graph
    for value in list(graph.inputs) + list(graph.outputs):
        spec = by_name.get(value.name)
        if spec is None or value.shape is None:
            continue
        dims = list(value.shape)
        for i, label in enumerate(spec.labels()):
            if isinstance(label, str):
                dims[i] = label
        value.shape = onnx_ir.Shape(dims)


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter talks a lot (warnings, logging, prints); keep the CLI's output clean."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    loggers += [logging.getLogger(n) for n in ("torch._guards", "torch._dynamo", "torch.fx.experimental.symbolic_shapes")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:  # a failed export's guard dumps: the one line the user gets says the cause
        lg.setLevel(logging.ERROR if lg.name.startswith(("torch.onnx", "torch.export", "torch._export", "onnxscript")) else logging.CRITICAL)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield sink
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _interrupted(exc: BaseException | None) -> bool:
    """torch.export wraps a Ctrl-C/SIGTERM in its own error; find it in the chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _root_cause(exc: BaseException) -> str:
    """The first line of the innermost error: the exporter's own wrapper says only which step failed."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parameter_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def _for_signature(module: nn.Module, shapes: tuple) -> tuple:
    """torch.export matches dynamic shapes to forward's parameters: one *inputs takes them all."""
    parameters = list(inspect.signature(module.forward).parameters.values())
    varargs = len(parameters) == 1 and parameters[0].kind is inspect.Parameter.VAR_POSITIONAL
    return (shapes,) if varargs else shapes


def export_module(
    module: nn.Module,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    example: dict[str, torch.Tensor],
    path: Path,
    opset: int = DEFAULT_OPSET,
    name: str = "the module",
) -> bool:
    """Export to `path`; returns whether the weights went to an external data file."""
    input_names = [s.name for s in inputs]
    output_names = [s.name for s in outputs]
    external = parameter_bytes(module) > EXTERNAL_DATA_THRESHOLD
    with _quiet_exporter() as log, one_head_at_a_time():
        try:
            program = torch.onnx.export(
                module,
                tuple(example[n] for n in input_names),
                dynamo=True,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=_for_signature(module, _dynamic_shapes(inputs)),
                opset_version=opset,
                optimize=True,
                custom_translation_table=translations.table(),
            )
        except Exception as exc:  # the exporter raises many types; all mean the same to the user
            if _interrupted(exc):
                raise KeyboardInterrupt from exc
            raise MmexportError(f"torch.onnx export of '{name}' failed: {_root_cause(exc)} (--debug shows the exporter's report)") from exc
    if log.getvalue() and logging.getLogger("mmexport").isEnabledFor(logging.DEBUG):
        logging.getLogger("mmexport").debug(log.getvalue())
    assert program is not None  # dynamo=True always returns a program
    _name_axes(program, inputs + outputs)
    if external:
        program.save(str(path), external_data=True)  # PATH.data beside it
        return True
    with tempfile.TemporaryDirectory(prefix=".mmexport-tensors-", dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        program.save(str(staged), external_data=True)  # tensors streamed to disk, not serialized in memory
        inline(staged, path)
    return False
