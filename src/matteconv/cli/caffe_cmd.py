"""`matteconv inspect MODEL`: what is in a Caffe or ONNX model, and which Ascend rules of a target it breaks."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import MatteconvError
from . import app, console, friendly


@app.command()
@friendly
def inspect(model: Path = typer.Argument(..., help="Caffe .prototxt (the .caffemodel beside it is used if present) "
                                         "or .onnx."),
            target: str = typer.Option(None, "--target", "-t", help="bvlc, ascend (atc) or ddk (omg): which layer "
                                       "table and Ascend rules to check (default: bvlc for Caffe, ascend for ONNX)."),
            as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
            all_layers: bool = typer.Option(False, "--layers", help="List every layer, not only the summary."),
            upgrade: Path = typer.Option(None, "--upgrade", help="Caffe prototxt in the old V0/V1 format: also write "
                                         "it upgraded to the current format (as Caffe's upgrade_net_proto_text)."),
            input_shape: str = typer.Option(None, "--input-shape", help="ONNX: the shape atc compiles at, in atc's "
                                            "spelling (input:1,3,512,512; several inputs separated by ';'), so "
                                            "every shape rule runs on a dynamic model.")):
    """Layers, counts per type, parameters, output shapes, the layers TARGET does not accept and the Ascend rules
    they break, each with its source (exit 1 if any layer is refused; rule warnings do not change it)."""
    from ..ascend.rules import check_model, check_ops, compiler_for_target

    if model.suffix.lower() == ".onnx":
        from ..ascend.ops import onnx_ops

        if model.is_dir():
            raise MatteconvError(f"{model}: is a folder, not an ONNX model")
        if not model.is_file():
            raise FileNotFoundError(f"{model}: ONNX model not found")
        compiler = compiler_for_target("onnx", target or "ascend")
        shapes = None
        if input_shape:
            from ..ascend.command import check_input_shape, inspect_onnx, parse_input_shape

            given = parse_input_shape(input_shape)
            check_input_shape(inspect_onnx(model), given)  # fills dynamic dimensions, never contradicts fixed ones
            shapes = dict(given)
        ops = onnx_ops(model, shapes)
        report = check_ops(ops, compiler.name)
        counts = dict(sorted(Counter(op.type for op in ops.ops).items()))
        if as_json:
            print(json.dumps({"path": str(model), "target": "ascend", "counts": counts,
                              "input_shapes": {k: list(v) for k, v in (shapes or {}).items()},
                              "rules": report.to_dict()}, indent=1))
        else:
            console.print(f"[bold]{escape(str(model))}[/]: {len(ops.ops)} nodes", highlight=False)
            table = Table("op type", "count")
            for t, n in counts.items():
                table.add_row(t, str(n))
            console.print(table)
            _render_rules(report)
        if report.errors:
            raise typer.Exit(1)
        return

    from ..export.caffe.summary import summarize

    target = target or "bvlc"
    if input_shape:
        raise MatteconvError(f"{model}: --input-shape is for ONNX models here: a prototxt's input shapes are written "
                             "in it (input_shape / input_dim); edit them there")
    if upgrade is not None:
        from ..fileio import check_output_file, refuse_overwrite

        check_output_file(upgrade)
        refuse_overwrite([upgrade], [model])
    s = summarize(model, target)
    if upgrade is not None:
        from ..export.caffe.upgrade import read_net, upgraded_text
        from ..fileio import atomic_path

        nt = read_net(model)
        if not nt.upgraded:
            raise MatteconvError(f"{model}: already in the current format (layer {{ }}): nothing to upgrade")
        with atomic_path(upgrade) as tmp:
            tmp.write_text(upgraded_text(nt), encoding="utf-8")
    compiler = compiler_for_target("caffe", target)
    report = None
    if compiler is not None:
        from ..ascend.caffe_oplist import unsupported

        # a user's file is held to what the compiler's parser takes (CANN's whole list), not to our export's set
        s.unsupported = unsupported(s.layers, compiler.name)
    if compiler is not None:  # reuse the shapes summarize already got from pycaffe
        shapes = {top: tuple(sh) for la in s.layers for top, sh in zip(la.tops, la.shapes or [])}
        shapes.update({n: tuple(sh) for n, sh in s.inputs.items()})
        report = check_model(model, compiler.name, shapes=(shapes, s.caffe_error))
    if as_json:
        print(json.dumps(s.to_dict() | {"rules": report.to_dict() if report else None}, indent=1))
    else:
        _render(s, all_layers)
        if report is not None:
            _render_rules(report)
        if upgrade is not None:
            console.print(f"wrote {escape(str(upgrade))} (the upgraded prototxt)", highlight=False)
    if s.unsupported or s.refusals or (report is not None and report.errors):
        raise typer.Exit(1)


def _render(s, all_layers: bool) -> None:
    params = f"{s.num_params:,}" if s.num_params is not None else "unavailable"
    console.print(f"[bold]{escape(s.path)}[/]: {len(s.layers)} layers, {params} parameters", highlight=False)
    if s.unknown_fields:
        console.print("  [yellow]fields BVLC's caffe.proto lacks were skipped[/] (a vendor's caffe.proto, e.g. "
                      f"Ascend's, defines them; pycaffe refuses the file): first: {escape(s.unknown_fields)}",
                      highlight=False)
    if s.excluded:
        console.print(f"  not in the TEST net (include/exclude rules; not counted or checked): "
                      + escape(", ".join(f"{n} ({t})" for n, t in s.excluded)), highlight=False)
    if s.format != "V2":
        console.print(f"  [yellow]{s.format} prototxt[/] (`layers {{ type: ENUM }}`, `input_dim`): read as Caffe upgrades "
                      "it (upgrade_proto); the layers below are the upgraded ones", highlight=False)
    for name, shape in s.inputs.items():
        console.print(f"  input  {escape(name)}: {'x'.join(map(str, shape))}", highlight=False)
    for name, shape in s.outputs.items():
        console.print(f"  output {escape(name)}: {'x'.join(map(str, shape))}", highlight=False)
    if s.caffe_error:
        console.print(f"  shapes unavailable: {escape(s.caffe_error)}", highlight=False)
    counts = Table("layer type", "count", f"accepted by {s.target}")
    bad_types = {t for _, t in s.unsupported}
    for t, n in s.counts.items():
        counts.add_row(escape(t), str(n), "[red]no[/]" if t in bad_types else "yes")
    console.print(counts)
    if all_layers:
        table = Table("layer", "type", "top shape", "params")
        for la in s.layers:
            shape = ", ".join("x".join(map(str, sh)) for sh in (la.shapes or []))
            table.add_row(escape(la.name), escape(la.type), shape, "" if la.params is None else str(la.params))
        console.print(table)
    for line in s.refusals:
        console.print(f"[bold red]refused by target '{s.target}':[/] {escape(line)}", highlight=False)
    if s.unsupported:
        console.print(f"[bold red]{len(s.unsupported)} layer(s) not accepted by target '{s.target}':[/] "
                      + escape(", ".join(f"{n} ({t})" for n, t in s.unsupported)), highlight=False)
    elif not s.refusals:
        console.print(f"[green]all {len(s.layers)} layers accepted by target '{s.target}'[/]")


def _render_rules(report) -> None:
    """One row per violation: the layer, the rule, what is wrong and the page that says so."""
    if report.violations:
        table = Table("layer", "type", "rule", "severity", "problem", title=f"{report.compiler} rules")
        table.add_column("source", overflow="fold")
        for v in report.violations:
            colour = "red" if v.severity == "error" else "yellow"
            table.add_row(escape(v.layer), escape(v.type), v.rule, f"[{colour}]{v.severity}[/]", escape(v.message),
                          escape(v.source))
        console.print(table)
    note = report.unchecked_note()
    if note:
        console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    n_err, n_warn = len(report.errors), len(report.warnings)
    colour = "red" if n_err else "green"
    console.print(f"[{colour}]{report.compiler}: {n_err} rule error(s), {n_warn} warning(s)[/]", highlight=False)
