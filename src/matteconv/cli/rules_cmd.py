"""`matteconv rules`: the Ascend layer/op rules each compiler is checked against, with their sources."""
from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from . import app, console, friendly


@app.command("rules")
@friendly
def rules(compiler: str = typer.Option(None, "--compiler", "-c", help="atc-caffe, atc-onnx or omg (default: all)."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
    """The rules `matteconv inspect --target` and `matteconv om` check before the compiler runs."""
    from ..ascend.rules import COMPILERS, RULES, rules_for

    picked = rules_for(compiler) if compiler else list(RULES)
    if as_json:
        print(json.dumps({"compilers": {k: c.description for k, c in COMPILERS.items()},
                          "rules": [r.to_dict() for r in picked]}, indent=1))
        return
    table = Table("rule", "compilers", "severity", "checks")
    table.add_column("source", overflow="fold")
    for r in picked:
        checks = r.checks + (f" (enforced by {r.enforced_by})" if r.enforced_by else "")
        table.add_row(r.id, ", ".join(r.compilers), r.severity, escape(checks), escape(r.source.replace(" ; ", "\n")))
    console.print(table)
