"""`matteconv inspect FILE.prototxt`: what is in a Caffe model and whether a target accepts it."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from . import app, console, friendly


@app.command()
@friendly
def inspect(prototxt: Path = typer.Argument(..., help="Caffe .prototxt (the .caffemodel beside it is used if present)."),
            target: str = typer.Option("bvlc", "--target", "-t", help="bvlc, ascend or ddk: which layer table to check against."),
            as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
            all_layers: bool = typer.Option(False, "--layers", help="List every layer, not only the summary.")):
    """Layers, counts per type, parameters, output shapes, and the layers TARGET does not accept (exit 1 if any)."""
    from ..export.caffe.summary import summarize

    s = summarize(prototxt, target)
    if as_json:
        print(json.dumps(s.to_dict(), indent=1))
    else:
        _render(s, all_layers)
    if s.unsupported:
        raise typer.Exit(1)


def _render(s, all_layers: bool) -> None:
    params = f"{s.num_params:,}" if s.num_params is not None else "unavailable"
    console.print(f"[bold]{s.path}[/]: {len(s.layers)} layers, {params} parameters", highlight=False)
    for name, shape in s.inputs.items():
        console.print(f"  input  {name}: {'x'.join(map(str, shape))}", highlight=False)
    for name, shape in s.outputs.items():
        console.print(f"  output {name}: {'x'.join(map(str, shape))}", highlight=False)
    if s.caffe_error:
        console.print(f"  shapes unavailable: {s.caffe_error}", highlight=False)
    counts = Table("layer type", "count", f"accepted by {s.target}")
    bad_types = {t for _, t in s.unsupported}
    for t, n in s.counts.items():
        counts.add_row(t, str(n), "[red]no[/]" if t in bad_types else "yes")
    console.print(counts)
    if all_layers:
        table = Table("layer", "type", "top shape", "params")
        for la in s.layers:
            shape = ", ".join("x".join(map(str, sh)) for sh in (la.shapes or []))
            table.add_row(la.name, la.type, shape, "" if la.params is None else str(la.params))
        console.print(table)
    if s.unsupported:
        console.print(f"[bold red]{len(s.unsupported)} layer(s) not accepted by target '{s.target}':[/] "
                      + ", ".join(f"{n} ({t})" for n, t in s.unsupported), highlight=False)
    else:
        console.print(f"[green]all layers accepted by target '{s.target}'[/]")
