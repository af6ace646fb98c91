"""`matteconv compare`: layer-by-layer diff of a converted model against its checkpoint, naming the first
PyTorch module where the numbers go wrong."""
from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.table import Table

from . import app, backbone_copy_option, console, fail, friendly


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.2e}"


def _module(path: str) -> str:
    return path if path else "(model output)"


def divergence_lines(report) -> list[str]:
    d = report.first_divergence
    budget = (f"the alpha tolerance {report.alpha_tolerance:g} allows {report.headroom:.0f} fp32 floors "
              f"(alpha floor {_fmt(report.alpha_floor)})")
    if d is None:
        worst = max((r.rel for r in report.rows), default=float("nan"))
        worst_b = max((r.budget_ratio for r in report.rows), default=float("nan"))
        return [(f"[green]no divergence[/]: all {len(report.rows)} matched layers within relative error "
                 f"{report.threshold:g} (worst {_fmt(worst)}) and within the absolute budget (worst "
                 f"{worst_b:.2f} of it; {budget})")]
    prev = f"{d.previous_layer} at {_fmt(d.previous_rel)}" if d.previous_layer else "none before it"
    why = (f"rel err {_fmt(d.rel)}, max|d| {_fmt(d.max_abs)}; previous matched layer {prev}" if d.rule == "relative"
           else f"the error starts here: {_fmt(d.max_abs)} vs float64, over the fp32 floor where a faithful "
                f"conversion stays, and a later layer exceeds the absolute budget ({budget})")
    return [f"[bold red]first divergence[/] ({d.rule}): module [bold]{_module(d.module)}[/] (block "
            f"{_module(d.block)})", f"  candidate layer {d.layer} ({d.op}): {why}"]


def rows_table(report, top: int) -> Table:
    rows = report.worst(top)
    first = report.first_divergence.layer if report.first_divergence else None
    title = f"worst {len(rows)} of {len(report.rows)} matched layers (execution order)"
    if first is not None:  # the divergence and the layer before it are always shown, for context
        pos = next(i for i, r in enumerate(report.rows) if r.layer == first)
        extra = [r for r in report.rows[max(pos - 1, 0): pos + 1] if r not in rows]
        rows = sorted(rows + extra, key=lambda r: r.index)
        if extra:
            title += ", with the first divergence"
    t = Table(title=title)
    for col, just in (("#", "right"), ("layer", "left"), ("module", "left"), ("op", "left"), ("shape", "left"),
                      ("max|d|", "right"), ("rel err", "right"), ("fp32 floors", "right"), ("of budget", "right")):
        t.add_column(col, justify=just, overflow="fold")
    for r in rows:
        style = "bold red" if r.layer == first else ("yellow" if r.rel > report.threshold or r.budget_ratio > 1
                                                     else None)
        t.add_row(str(r.index), r.layer, _module(r.module), r.op, "x".join(map(str, r.shape)), _fmt(r.max_abs),
                  _fmt(r.rel), f"{r.floors:.1f}", f"{r.budget_ratio:.2f}", style=style)
    return t


@app.command()
@friendly
@backbone_copy_option
def compare(
    reference: Path = typer.Argument(..., help="The PyTorch checkpoint the candidate was converted from."),
    candidate: Path = typer.Argument(None, help="The converted model: .onnx, or .prototxt (.caffemodel beside it); "
                                                "not with --precision fp16."),
    golden: Path = typer.Option(Path("golden/photos"), "--golden", help="Golden set folder: its input is used."),
    input_name: str = typer.Option(None, "--input", help="Golden input to run (default: the one where the candidate's "
                                   "alpha is furthest from its golden alpha; fp16: where the predicted .om is)."),
    top: int = typer.Option(12, "--top", help="Rows in the worst-layers table."),
    float64: bool = typer.Option(False, "--float64", help="Run PyTorch in float64 (slow on CPU; default float32)."),
    show_unmatched: bool = typer.Option(False, "--unmatched", help="List candidate layers with no PyTorch match."),
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON instead of tables."),
    precision: str = typer.Option("fp32", "--precision",
                                  help="fp32: CANDIDATE vs the checkpoint. fp16: the checkpoint under the Ascend fp16 "
                                       "device model vs itself in fp32, per module, with overflows and underflows. "
                                       "int8: each layer of the ONNX or Caffe CANDIDATE quantized alone, ranked by "
                                       "the alpha error it adds."),
    quant_record: Path = typer.Option(None, "--quant-record", help="With --precision int8: the record `quantize` "
                                                                   "wrote (default: calibrate on the golden inputs)."),
):
    """Compare every intermediate tensor of CANDIDATE with the PyTorch module it came from; print the first
    layer whose error jumps and the worst layers. With --precision fp16: where fp16 hurts the checkpoint."""
    import torch

    from ..verify.compare import compare_models

    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"--precision {precision}: choose fp32, fp16 or int8")
    if precision == "int8":
        if candidate is None or candidate.suffix.lower() not in (".onnx", ".prototxt"):
            raise ValueError("--precision int8 ranks the layers of an ONNX or Caffe CANDIDATE: give the .onnx model "
                             "or the .prototxt (`ascend` export, .caffemodel beside it)")
        _compare_int8(reference, candidate, golden, input_name, top, json_out, quant_record)
        return
    if precision == "fp16":
        if candidate is not None:
            raise ValueError("--precision fp16 analyses the checkpoint itself under the device model: give no "
                             "CANDIDATE (the verify --fp16 stages check each converted model)")
        _compare_fp16(reference, golden, input_name, top, json_out)
        return
    if candidate is None:
        raise ValueError("give the CANDIDATE model (.onnx or .prototxt) to compare against REFERENCE")

    with console.status("comparing layer by layer..."):
        report = compare_models(reference, candidate, golden, input_name,
                                dtype=torch.float64 if float64 else torch.float32)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        _fail_on_nan(report)
        return
    console.print(f"{report.candidate} ({report.kind}) vs {report.reference} (torch {report.reference_dtype}) on "
                  f"golden input {report.input_name!r}{' (the worst)' if report.inputs_alpha_error else ''} "
                  f"{report.size[0]}x{report.size[1]}: {len(report.rows)} "
                  f"layers matched, {len(report.unmatched)} unmatched, alpha max|d| {_fmt(report.alpha_max_abs)} "
                  f"({report.seconds:.1f} s)", highlight=False)
    for line in divergence_lines(report):
        console.print(line, highlight=False)
    console.print(rows_table(report, top))
    if show_unmatched:
        t = Table(title=f"{len(report.unmatched)} candidate layers with no exact PyTorch counterpart")
        for col in ("#", "layer", "op", "why"):
            t.add_column(col, overflow="fold")
        for u in report.unmatched:
            t.add_row(str(u.index), u.layer, u.op, u.reason)
        console.print(t)
    elif report.unmatched:
        console.print(f"{len(report.unmatched)} candidate layers have no exact PyTorch counterpart (partial "
                      "convs, slices, resizes inside a branch); --unmatched lists them", highlight=False)
    if report.reference_vs_golden > 1e-3:
        console.print(f"[yellow]note[/]: the checkpoint's alpha differs from the golden alpha by "
                      f"{_fmt(report.reference_vs_golden)}: the golden set was made from another checkpoint",
                      highlight=False)
    _fail_on_nan(report)


def _compare_fp16(reference: Path, golden: Path, input_name: str | None, top: int, json_out: bool) -> None:
    from ..verify.fp16_compare import compare_checkpoint_fp16

    with console.status("running the checkpoint in fp32 and under the fp16 device model..."):
        report = compare_checkpoint_fp16(reference, golden, input_name)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    console.print(f"{report.reference} fp16 (device model) vs fp32 on golden input {report.input_name!r}"
                  f"{' (the worst)' if report.input_errors else ''} "
                  f"{report.size[0]}x{report.size[1]}: {len(report.rows)} modules, alpha max|d| "
                  f"{_fmt(report.alpha_max_abs)} vs fp32, {_fmt(report.alpha_vs_golden)} vs golden "
                  f"({report.seconds:.1f} s)", highlight=False)
    j = report.first_jump
    if j is None:
        console.print(f"[green]no module over relative error {report.threshold:g}[/]", highlight=False)
    else:
        console.print(f"[bold red]first module over {report.threshold:g}[/]: [bold]{_module(j.module)}[/] ({j.op}): "
                      f"rel err {_fmt(j.rel)}, {j.growth:.1f}x the module before", highlight=False)
    t = Table(title=f"worst {min(top, len(report.rows))} of {len(report.rows)} modules (execution order)")
    for col, just in (("#", "right"), ("module", "left"), ("op", "left"), ("shape", "left"), ("max|d|", "right"),
                      ("rel err", "right"), ("growth", "right")):
        t.add_column(col, justify=just, overflow="fold")
    rows = report.worst(top)
    if j is not None and j not in rows:
        rows = sorted(rows + [j], key=lambda r: r.index)
    for r in rows:
        style = "bold red" if j is not None and r.index == j.index else None
        t.add_row(str(r.index), _module(r.module), r.op, "x".join(map(str, r.shape)), _fmt(r.max_abs), _fmt(r.rel),
                  "" if math.isnan(r.growth) else f"{r.growth:.1f}x", style=style)
    console.print(t)
    if report.issues:
        it = Table(title=f"{len(report.issues)} fp16 hazard(s)")
        for col in ("module", "kind", "detail"):
            it.add_column(col, overflow="fold")
        for i in report.issues:
            it.add_row(i.module, i.kind, i.detail)
        console.print(it)
    else:
        console.print("[green]no fp16 overflow or variance underflow[/]", highlight=False)
    console.print(f"flagged for --keep-fp32 auto: {', '.join(report.flagged()) or 'none'}", highlight=False)
    if report.fp16_only():
        console.print(f"[yellow]on Ascend310 these compute in fp16 whatever --keep-fp32 asks[/] (convolutions): "
                      f"{', '.join(report.fp16_only())}", highlight=False)


def _compare_int8(reference: Path, candidate: Path, golden: Path, input_name: str | None, top: int, json_out: bool,
                  quant_record: Path | None) -> None:
    from ..verify.int8_compare import compare_int8

    with console.status("quantizing each layer alone under the INT8 device model..."):
        report = compare_int8(reference, candidate, golden, input_name, quant_record)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
        return
    console.print(f"{report.model} INT8 (device model) on golden input {report.input_name!r}: alpha max|d| / mean|d| "
                  f"vs float64: fp16 {_fmt(report.fp16['max_abs'])} / {_fmt(report.fp16['mean_abs'])}, all INT8 "
                  f"{_fmt(report.all_int8['max_abs'])} / {_fmt(report.all_int8['mean_abs'])} ({report.seconds:.1f} s)",
                  highlight=False)
    t = Table(title=f"the {min(top, len(report.rows))} of {len(report.rows)} layers whose INT8 hurts most, alone")
    for col, just in (("#", "right"), ("layer", "left"), ("module", "left"), ("op", "left"), ("MACs", "right"),
                      ("max|d|", "right"), ("added max", "right"), ("added mean", "right")):
        t.add_column(col, justify=just, overflow="fold")
    for r in report.rows[: max(top, 0)]:
        t.add_row(str(r.rank), r.layer, _module(r.module) if r.module is not None else "?", r.op,
                  f"{100 * r.macs_share:.1f}%", _fmt(r.max_abs), _fmt(r.added_max), _fmt(r.added_mean))
    console.print(t)
    for name, why in report.skipped:
        console.print(f"kept fp16: {name}: {why}", highlight=False)


def _fail_on_nan(report) -> None:
    """A NaN or Inf alpha is a failure (exit 1), never a 'nan' in a table that reads like a number."""
    if not math.isfinite(report.alpha_max_abs):
        d = report.first_divergence
        where = f"; first non-finite or diverging layer: {d.layer} ({_module(d.module)})" if d else ""
        fail(f"{report.candidate}: model output contains NaN or Inf{where}", code=1)
