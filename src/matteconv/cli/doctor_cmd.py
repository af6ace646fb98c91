"""`matteconv doctor`: which runtimes and Ascend tools this machine has, and what each enables."""
from __future__ import annotations

import json

import typer
from rich.table import Table

from . import app, console
from ..doctor import diagnose


@app.command()
def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """Show versions of torch, onnx, onnxruntime, onnxsim, pycaffe and the Ascend tools found."""
    rows = diagnose()
    if as_json:
        console.print_json(json.dumps(rows))
        return
    t = Table(title="matteconv doctor")
    for c in ("component", "found", "version / path", "enables"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"], "[green]yes[/]" if r["found"] else "[yellow]no[/]", r["detail"], r["enables"])
    console.print(t)
