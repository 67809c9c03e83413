"""What the export, quantize and trt commands print."""

from __future__ import annotations

from rich.markup import escape

from .. import api
from ..report import human_size, parity_table
from .app import out, show_table, warn


def print_export(result: api.ExportResult) -> None:
    weights = result.subject.describe_weights()
    if weights:
        out.print(escape(weights), highlight=False)
    for kind, specs in (("input ", result.record.inputs), ("output", result.record.outputs)):
        for spec in specs:
            out.print(f"  {kind} {spec.name} {escape(spec.describe())} {spec.dtype}", highlight=False)
    if result.parity:
        show_table(parity_table(result.parity))
    size = human_size(result.path.stat().st_size)
    out.print(f"[green]wrote[/] {escape(str(result.path))} ({size}) and its manifest {escape(result.path.name)}.json in {result.seconds:.1f} s", soft_wrap=True)


def print_variant(result: api.VariantResult) -> None:
    warn(result.warnings)
    show_table(parity_table(result.parity))
    q = result.record.quantization or {}
    facts = [f"size {result.record.size_ratio_vs_fp32:.2f}x fp32"]
    if "quantized_mac_share" in q:
        facts.append(
            f"{q['quantized_mac_share']:.0%} of weight MACs in {result.record.precision} ({q['quantized_layers']} layers), "
            f"ranges {q['method']}, SmoothQuant alpha {q['smooth_alpha'] or 'off'}, the rest {q['high_precision']} (--target {result.record.target})"
        )
        facts += [f"{name}: {why}" for name, why in q["kept"].items()]
    kept = q.get("kept_fp32") or {}
    for why, entry in (kept.get("reasons") or {}).items():
        facts.append(f"{entry['nodes']} nodes kept in fp32 ({why}, |x| up to {entry['max_abs']:g})")
    if q.get("kept_fp32_ops"):
        facts.append("op types kept in fp32: " + ", ".join(q["kept_fp32_ops"]))
    for fact in facts:
        out.print(f"  {escape(fact)}", highlight=False)
    out.print(f"[green]wrote[/] {escape(str(result.path))} and its manifest in {result.seconds:.1f} s", soft_wrap=True)


def print_engine(result: api.BuildResult) -> None:
    e = result.record.engine
    assert e is not None
    out.print(f"{e.flavor} {e.tensorrt_version}, {result.record.precision}, targets {', '.join(e.targets)}", highlight=False)
    for profile in e.profiles:
        for name, bounds in profile.items():
            out.print(f"  {name}: min {bounds['min']} opt {bounds['opt']} max {bounds['max']}", highlight=False)
    out.print(f"[green]wrote[/] {escape(str(result.path))} ({human_size(e.engine_bytes)}) and its manifest in {result.seconds:.1f} s", soft_wrap=True)
