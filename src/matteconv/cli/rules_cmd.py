"""`matteconv rules`: the Ascend layer/op rules each compiler is checked against and the AIPP config rules, with
their sources; `--markdown` renders docs/targets-and-rules.md from the same tables."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from . import app, console, friendly


@app.command("rules")
@friendly
def rules(compiler: str = typer.Option(None, "--compiler", "-c", help="atc-caffe, atc-onnx or omg (default: all)."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
          markdown: bool = typer.Option(False, "--markdown", help="Print the targets-and-rules page (Markdown)."),
          output: Path = typer.Option(None, "-o", "--output", help="With --markdown: write the page to this file.")):
    """The rules `matteconv inspect --target`, `matteconv om` and `matteconv aipp check` check before the
    compiler runs."""
    from ..aipp.rules import AIPP_RULES
    from ..ascend.rules import COMPILERS, RULES, rules_for
    from ..errors import MatteconvError

    if output is not None and not markdown:
        raise MatteconvError("-o/--output writes the --markdown page: give --markdown too")
    if markdown:
        from ..ascend.rules_page import render_markdown

        _markdown(render_markdown(), output)
        return
    picked = rules_for(compiler) if compiler else list(RULES)
    if as_json:
        print(json.dumps({"compilers": {k: c.description for k, c in COMPILERS.items()},
                          "rules": [r.to_dict() for r in picked],
                          "aipp_rules": [r.to_dict() for r in AIPP_RULES]}, indent=1))
        return
    table = Table("rule", "compilers", "severity", "checks", title="Layer and operator rules")
    table.add_column("source", overflow="fold")
    for r in picked:
        checks = r.checks + (f" (enforced by {r.enforced_by})" if r.enforced_by else "")
        table.add_row(r.id, ", ".join(r.compilers), r.severity, escape(checks), escape(r.source.replace(" ; ", "\n")))
    console.print(table)
    table = Table("rule", "scope", "severity", "checks", title="AIPP config rules (matteconv aipp check)")
    table.add_column("source", overflow="fold")
    for r in AIPP_RULES:
        table.add_row(r.id, r.scope, r.severity, escape(r.checks), escape(r.source.replace(" ; ", "\n")))
    console.print(table)


def _markdown(text: str, output: Path | None) -> None:
    if output is None:
        print(text, end="")
        return
    from ..fileio import atomic_path, check_output_file

    check_output_file(output)
    with atomic_path(output) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    console.print(f"wrote {escape(str(output))}", highlight=False)
